package router

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// HAProxy drives an HAProxy backend whose servers are named after the
// slots — blue and green, and blue-2, green-2, ... for further replicas —
// through the runtime API: weights change without a reload.
type HAProxy struct {
	// Socket is a unix socket path, or host:port for a TCP stats socket.
	Socket  string
	Backend string
	// Map is the map file the backend's route rules read (haproxyroutes.go).
	Map string
	// Blue and Green are the slots' replica addresses (host:port).
	Blue, Green []string
}

// servers names a slot's servers: blue, blue-2, blue-3, ...
func (h *HAProxy) servers(slot rollout.Slot) []string {
	n := len(h.Blue)
	if slot == rollout.Green {
		n = len(h.Green)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = string(slot)
		if i > 0 {
			names[i] += "-" + strconv.Itoa(i+1)
		}
	}
	return names
}

func (h *HAProxy) addrs(slot rollout.Slot) []string {
	if slot == rollout.Green {
		return h.Green
	}
	return h.Blue
}

// Command runs one runtime API command and returns its answer.
func (h *HAProxy) Command(ctx context.Context, cmd string) (string, error) {
	network, addr := "unix", h.Socket
	if !strings.HasPrefix(addr, "/") && strings.Contains(addr, ":") {
		network = "tcp"
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return "", fmt.Errorf("haproxy: connect %s: %w (is HAProxy running with 'stats socket %s level admin'?)", addr, err, addr)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: send %q: %w", cmd, err)
	}
	out, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil {
		return "", fmt.Errorf("haproxy: read answer to %q: %w", cmd, err)
	}
	return string(out), nil
}

// commands runs several commands in one connection (HAProxy applies them in
// order) and fails on any answer that is not empty or an informational one.
func (h *HAProxy) commands(ctx context.Context, cmds ...string) error {
	out, err := h.Command(ctx, strings.Join(cmds, "; "))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "IP changed") || strings.HasPrefix(line, "port changed") ||
			strings.HasPrefix(line, "no need to change") {
			continue
		}
		return fmt.Errorf("haproxy: %s: %s", strings.Join(cmds, "; "), line)
	}
	return nil
}

// Ensure sets each slot server's address.
func (h *HAProxy) Ensure(ctx context.Context) error {
	var cmds []string
	for _, slot := range []rollout.Slot{rollout.Blue, rollout.Green} {
		for i, name := range h.servers(slot) {
			host, port, err := net.SplitHostPort(h.addrs(slot)[i])
			if err != nil {
				return fmt.Errorf("haproxy: slot %s address %q: %w", slot, h.addrs(slot)[i], err)
			}
			cmds = append(cmds, fmt.Sprintf("set server %s/%s addr %s port %s", h.Backend, name, host, port))
		}
	}
	err := h.commands(ctx, cmds...)
	if err != nil && strings.Contains(err.Error(), "No such server") {
		return fmt.Errorf("%w (backend %s needs the servers %s and %s)", err, h.Backend,
			strings.Join(h.servers(rollout.Blue), ", "), strings.Join(h.servers(rollout.Green), ", "))
	}
	return err
}

// SetWeights raises before it lowers, so at no instant do both slots have
// 0. Every replica of a slot gets the slot's weight: with as many replicas
// on each side, the split is the slot's share.
func (h *HAProxy) SetWeights(ctx context.Context, w rollout.Weights) error {
	up, down := rollout.Blue, rollout.Green
	if w.Green > w.Blue {
		up, down = down, up
	}
	before, err := h.serverWeights(ctx)
	if err != nil {
		return err
	}
	var cmds []string
	for _, slot := range []rollout.Slot{up, down} {
		for i, name := range h.servers(slot) {
			if before[slot][i] == 0 && w.Of(slot) > 0 {
				// A slot given traffic from none has just passed Switchyard's
				// own health checks, but HAProxy's may not have run since the
				// process started (it marks a server up only after a check
				// passes): without this the first requests find no server
				// and get 503. The next check still judges it.
				cmds = append(cmds, fmt.Sprintf("set server %s/%s health up", h.Backend, name))
			}
			cmds = append(cmds, fmt.Sprintf("set weight %s/%s %d", h.Backend, name, w.Of(slot)))
		}
	}
	return h.commands(ctx, cmds...)
}

// Weights reads the slots' weights. Every replica of a slot must carry the
// slot's weight: one that does not (a set that did not land) is named in
// an error, so a verify after a set catches it and the set is tried again.
func (h *HAProxy) Weights(ctx context.Context) (rollout.Weights, error) {
	all, err := h.serverWeights(ctx)
	if err != nil {
		return rollout.Weights{}, err
	}
	for _, slot := range []rollout.Slot{rollout.Blue, rollout.Green} {
		for i, name := range h.servers(slot) {
			if all[slot][i] != all[slot][0] {
				return rollout.Weights{}, fmt.Errorf("haproxy: the servers of slot %s disagree: %s/%s has weight %d, %s/%s %d",
					slot, h.Backend, h.servers(slot)[0], all[slot][0], h.Backend, name, all[slot][i])
			}
		}
	}
	return rollout.Weights{Blue: all[rollout.Blue][0], Green: all[rollout.Green][0]}, nil
}

// serverWeights reads the weight of every server of both slots.
func (h *HAProxy) serverWeights(ctx context.Context) (map[rollout.Slot][]int, error) {
	var cmds, names []string
	for _, slot := range []rollout.Slot{rollout.Blue, rollout.Green} {
		for _, name := range h.servers(slot) {
			cmds = append(cmds, fmt.Sprintf("get weight %s/%s", h.Backend, name))
			names = append(names, name)
		}
	}
	out, err := h.Command(ctx, strings.Join(cmds, "; "))
	if err != nil {
		return nil, err
	}
	var vals []int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("haproxy: get weight %s/%s: %s (backend %s needs the servers %s)", h.Backend, names[min(len(vals), len(names)-1)], l, h.Backend, strings.Join(names, ", "))
		}
		vals = append(vals, v)
	}
	if len(vals) != len(names) {
		return nil, fmt.Errorf("haproxy: get weight %s: unexpected answer %q", h.Backend, out)
	}
	nb := len(h.Blue)
	return map[rollout.Slot][]int{rollout.Blue: vals[:nb], rollout.Green: vals[nb:]}, nil
}

// Counters reads the blue and green servers' lines of 'show stat'.
func (h *HAProxy) Counters(ctx context.Context) (map[rollout.Slot]rollout.Counters, error) {
	out, err := h.Command(ctx, "show stat")
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) < 2 {
		return nil, fmt.Errorf("haproxy: show stat: unreadable answer: %v", err)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	num := func(rec []string, name string) int64 {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return 0
		}
		v, _ := strconv.ParseInt(rec[i], 10, 64)
		return v
	}
	res := map[rollout.Slot]rollout.Counters{}
	for _, rec := range recs[1:] {
		if len(rec) < 2 || rec[col["pxname"]] != h.Backend {
			continue
		}
		sv := rec[col["svname"]]
		slot := rollout.Slot(sv)
		if base, _, ok := strings.Cut(sv, "-"); ok {
			slot = rollout.Slot(base) // blue-2 is a replica of blue
		}
		if slot != rollout.Blue && slot != rollout.Green {
			continue
		}
		var total int64
		for _, c := range []string{"hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"} {
			total += num(rec, c)
		}
		c := res[slot]
		c.Requests += total + num(rec, "eresp")
		c.Errors += num(rec, "hrsp_5xx") + num(rec, "eresp")
		c.AvgResponseMs = max(c.AvgResponseMs, num(rec, "rtime")) // the slowest replica's average
		res[slot] = c
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("haproxy: show stat has no servers blue and green in backend %s", h.Backend)
	}
	return res, nil
}
