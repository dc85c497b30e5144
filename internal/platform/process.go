package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Process runs each slot as a local OS process in its own session, so it
// outlives the worker that started it; a pidfile in the state directory lets
// the next worker find it again.
type Process struct {
	svc      *spec.Service
	stateDir string
}

// NewProcess returns the process platform for a resolved spec.
func NewProcess(s *spec.Service) *Process {
	dir := s.Run.StateDir
	if dir == "" {
		dir = filepath.Join(s.Dir, ".switchyard", "slots")
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join(s.Dir, dir)
	}
	return &Process{svc: s, stateDir: dir}
}

type pidfile struct {
	PID       int    `json:"pid"`
	StartTime string `json:"startTime"` // from /proc/PID/stat, against PID reuse
	Version   string `json:"version"`
	Port      int    `json:"port"`
}

func (p *Process) base(slot rollout.Slot) string {
	return filepath.Join(p.stateDir, fmt.Sprintf("%s-%s-%s", p.svc.Name, p.svc.Environment, slot))
}

// LogPath is where the slot's output goes.
func (p *Process) LogPath(slot rollout.Slot) string { return p.base(slot) + ".log" }

func (p *Process) port(slot rollout.Slot) int {
	if slot == rollout.Blue {
		return p.svc.Run.Ports.Blue
	}
	return p.svc.Run.Ports.Green
}

func (p *Process) addr(slot rollout.Slot) string {
	return net.JoinHostPort(p.svc.Run.Host, strconv.Itoa(p.port(slot)))
}

func (p *Process) read(slot rollout.Slot) (*pidfile, error) {
	b, err := os.ReadFile(p.base(slot) + ".pid")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pf pidfile
	if err := json.Unmarshal(b, &pf); err != nil {
		// torn by a crash mid-write (before writes were atomic): no record;
		// stopOrphans finds the slot's process by its environment
		return nil, nil
	}
	// believed only for a process Switchyard started for this slot: a
	// pidfile anyone could write must not make Retire signal pid 1, a
	// process group of someone else's, or a pid reused since
	if pf.PID <= 1 || pf.StartTime == "" || !alive(pf.PID, pf.StartTime) || !p.ours(pf.PID, slot) {
		return nil, nil
	}
	return &pf, nil
}

// ours says whether pid runs with the environment Switchyard gives this
// slot's processes (SWITCHYARD_SERVICE, _ENVIRONMENT, _SLOT).
func (p *Process) ours(pid int, slot rollout.Slot) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	vars := strings.Split(string(b), "\x00")
	for _, w := range []string{"SWITCHYARD_SERVICE=" + p.svc.Name, "SWITCHYARD_ENVIRONMENT=" + p.svc.Environment, "SWITCHYARD_SLOT=" + string(slot)} {
		if !slices.Contains(vars, w) {
			return false
		}
	}
	return true
}

// groupLeader says whether pid leads its process group, so kill(-pid)
// reaches only the group Switchyard started (the slot runs in its own session).
func groupLeader(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	return len(f) > 2 && f[2] == strconv.Itoa(pid)
}

// procStart returns a process's start time and whether it is running (not a zombie).
func procStart(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return "", false
	}
	return f[19], true
}

func alive(pid int, start string) bool {
	st, ok := procStart(pid)
	return ok && st == start
}

// Inspect reports the slot's process, if one runs.
func (p *Process) Inspect(_ context.Context, slot rollout.Slot) (Instance, error) {
	in := Instance{Slot: slot, Addr: p.addr(slot)}
	pf, err := p.read(slot)
	if err != nil || pf == nil {
		return in, err
	}
	in.Running, in.Version, in.PID = true, pf.Version, pf.PID
	return in, nil
}

// Build: a process runs what the build command left; there is no artifact.
func (p *Process) Build(context.Context, string, func(string)) (string, error) { return "", nil }

// Gates: the process platform has no built-in artifact checks.
func (p *Process) Gates(context.Context, string) ([]rollout.CheckResult, error) { return nil, nil }

// Provision starts the version in the slot, or re-attaches to it.
func (p *Process) Provision(ctx context.Context, slot rollout.Slot, version, _ string, heartbeat func(string)) (Instance, error) {
	if heartbeat == nil {
		heartbeat = func(string) {}
	}
	defer provisioning("process:" + p.base(slot))()
	in := Instance{Slot: slot, Addr: p.addr(slot), Version: version}
	pf, err := p.read(slot)
	if err != nil {
		return in, err
	}
	if pf != nil && pf.Version == version && pf.Port == p.port(slot) {
		in.PID, in.Running, in.Reattached = pf.PID, true, true
		return in, p.waitReady(ctx, slot, pf.PID, heartbeat)
	}
	if pf != nil {
		heartbeat(fmt.Sprintf("stopping %s (version %s) in slot %s", p.svc.Name, pf.Version, slot))
		if err := p.Retire(ctx, slot); err != nil {
			return in, err
		}
	}
	if err := portFree(p.addr(slot)); err != nil && p.stopOrphans(ctx, slot) > 0 {
		heartbeat(fmt.Sprintf("stopped an unrecorded process of slot %s (a start cut short)", slot))
	}
	if err := portFree(p.addr(slot)); err != nil {
		return in, &BadInputError{fmt.Errorf("process: slot %s: port %d is in use by a process Switchyard did not start (%v); stop it or change run.ports.%s", slot, p.port(slot), err, slot)}
	}
	args := make([]string, len(p.svc.Run.Command))
	for i, a := range p.svc.Run.Command {
		args[i] = strings.ReplaceAll(a, "{{version}}", version)
	}
	env, err := p.env(slot, version)
	if err != nil {
		return in, err
	}
	if err := os.MkdirAll(p.stateDir, 0o700); err != nil {
		return in, fmt.Errorf("process: state dir: %w", err)
	}
	logf, err := os.OpenFile(p.LogPath(slot), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return in, fmt.Errorf("process: slot log: %w", err)
	}
	defer logf.Close()
	_ = logf.Chmod(0o600) // a log kept from before may have been 0644
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = p.svc.Dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	// its own session: the slot survives the worker and a signal to it
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return in, &BadInputError{fmt.Errorf("process: start slot %s: %s: %w (check run.command)", slot, args[0], err)}
	}
	go func() { _ = cmd.Wait() }() // reap it if it exits while this worker lives
	start, _ := procStart(cmd.Process.Pid)
	pf = &pidfile{PID: cmd.Process.Pid, StartTime: start, Version: version, Port: p.port(slot)}
	b, _ := json.Marshal(pf)
	// whole or not at all: a worker killed mid-write must not leave half a record
	tmp := p.base(slot) + ".pid.tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return in, fmt.Errorf("process: write pidfile: %w", err)
	}
	if err := os.Rename(tmp, p.base(slot)+".pid"); err != nil {
		return in, fmt.Errorf("process: write pidfile: %w", err)
	}
	in.PID, in.Running = pf.PID, true
	heartbeat(fmt.Sprintf("started %s %s in slot %s (pid %d)", p.svc.Name, version, slot, pf.PID))
	return in, p.waitReady(ctx, slot, pf.PID, heartbeat)
}

func (p *Process) env(slot rollout.Slot, version string) ([]string, error) {
	env := []string{"PORT=" + strconv.Itoa(p.port(slot)), "HOST=" + p.svc.Run.Host}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	common, err := slotEnv(p.svc, slot, version)
	return append(env, common...), err
}

// waitReady waits until the slot accepts connections, failing at once if its
// process exits.
func (p *Process) waitReady(ctx context.Context, slot rollout.Slot, pid int, heartbeat func(string)) error {
	deadline := time.Now().Add(p.svc.Run.StartTimeout.D())
	start, _ := procStart(pid)
	for i := 0; ; i++ {
		if _, ok := procStart(pid); !ok || (start != "" && !alive(pid, start)) {
			return &BadInputError{fmt.Errorf("process: slot %s: %s exited at start; last lines of %s:\n%s",
				slot, p.svc.Run.Command[0], p.LogPath(slot), p.svc.Redact(tail(p.LogPath(slot), 10)))}
		}
		c, err := net.DialTimeout("tcp", p.addr(slot), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process: slot %s: not listening on %s after %s (run.startTimeout); last lines of %s:\n%s",
				slot, p.addr(slot), p.svc.Run.StartTimeout, p.LogPath(slot), p.svc.Redact(tail(p.LogPath(slot), 10)))
		}
		if i%10 == 0 {
			heartbeat(fmt.Sprintf("waiting for slot %s on %s", slot, p.addr(slot)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Retire stops the slot's process group: SIGTERM, then SIGKILL after run.stopTimeout.
func (p *Process) Retire(ctx context.Context, slot rollout.Slot) error {
	pf, err := p.read(slot)
	if err != nil {
		return err
	}
	if pf != nil {
		group := groupLeader(pf.PID)
		kill := func(sig syscall.Signal) {
			if group {
				_ = syscall.Kill(-pf.PID, sig)
			}
			_ = syscall.Kill(pf.PID, sig)
		}
		kill(syscall.SIGTERM)
		deadline := time.Now().Add(p.svc.Run.StopTimeout.D())
		for alive(pf.PID, pf.StartTime) {
			if time.Now().After(deadline) {
				kill(syscall.SIGKILL)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if err := os.Remove(p.base(slot) + ".pid"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// stopOrphans stops the processes of this slot that no pidfile records:
// a worker that died between starting a slot and writing its pidfile leaves
// one, holding the port. They are known by the environment Switchyard
// gave them (SWITCHYARD_SERVICE, _ENVIRONMENT, _SLOT), never by port alone:
// a process someone else started is left alone. It returns how many it stopped.
func (p *Process) stopOrphans(ctx context.Context, slot rollout.Slot) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	n := 0
	for _, path := range procs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil || pid <= 1 || !p.ours(pid, slot) {
			continue
		}
		start, _ := procStart(pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(p.svc.Run.StopTimeout.D())
		for alive(pid, start) && ctx.Err() == nil {
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(20 * time.Millisecond)
		}
		n++
	}
	return n
}

func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// Describe names the slot's process.
func (p *Process) Describe(in Instance) string { return fmt.Sprintf("pid %d", in.PID) }
