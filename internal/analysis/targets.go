package analysis

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/switchyard/switchyard/internal/rollout"
)

// TargetGroup is one entry of a Prometheus file_sd file.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

var targetsMu sync.Mutex

// SetTargets records a slot's addresses in a file_sd file with the labels
// service, environment, slot and version (and __metrics_path__ when given),
// or removes the slot's entry when addrs is empty. The file may list other
// services' slots too; it is rewritten whole and renamed into place, so
// Prometheus never reads half a file, under a lock so two workers on one
// host do not lose each other's entries.
func SetTargets(path, service, env string, slot rollout.Slot, version string, addrs []string, metricsPath string) error {
	targetsMu.Lock()
	defer targetsMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	var groups []TargetGroup
	if raw, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &groups); err != nil {
			return fmt.Errorf("prometheus targets file %s is not a file_sd JSON list: %v", path, err)
		}
	} else if err != nil && !os.IsNotExist(err) {
		return err
	}
	groups = slices.DeleteFunc(groups, func(g TargetGroup) bool {
		return g.Labels["service"] == service && g.Labels["environment"] == env && g.Labels["slot"] == string(slot)
	})
	if len(addrs) > 0 {
		l := map[string]string{"service": service, "environment": env, "slot": string(slot), "version": version}
		if metricsPath != "" {
			l["__metrics_path__"] = metricsPath
		}
		groups = append(groups, TargetGroup{Targets: slices.Clone(addrs), Labels: l})
	}
	slices.SortFunc(groups, func(a, b TargetGroup) int {
		return strings.Compare(a.Labels["service"]+"\x00"+a.Labels["environment"]+"\x00"+a.Labels["slot"],
			b.Labels["service"]+"\x00"+b.Labels["environment"]+"\x00"+b.Labels["slot"])
	})
	if groups == nil {
		groups = []TargetGroup{}
	}
	out, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".targets-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
