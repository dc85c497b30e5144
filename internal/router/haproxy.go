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

// HAProxy drives an HAProxy backend whose two servers are named blue and
// green, through the runtime API: weights change without a reload.
type HAProxy struct {
	// Socket is a unix socket path, or host:port for a TCP stats socket.
	Socket  string
	Backend string
	// Blue and Green are the slots' addresses (host:port).
	Blue, Green string
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
	for _, sa := range []struct {
		slot rollout.Slot
		addr string
	}{{rollout.Blue, h.Blue}, {rollout.Green, h.Green}} {
		host, port, err := net.SplitHostPort(sa.addr)
		if err != nil {
			return fmt.Errorf("haproxy: slot %s address %q: %w", sa.slot, sa.addr, err)
		}
		cmds = append(cmds, fmt.Sprintf("set server %s/%s addr %s port %s", h.Backend, sa.slot, host, port))
	}
	return h.commands(ctx, cmds...)
}

// SetWeights raises before it lowers, so at no instant do both slots have 0.
func (h *HAProxy) SetWeights(ctx context.Context, w rollout.Weights) error {
	up, down := rollout.Blue, rollout.Green
	if w.Green > w.Blue {
		up, down = down, up
	}
	err := h.commands(ctx,
		fmt.Sprintf("set weight %s/%s %d", h.Backend, up, w.Of(up)),
		fmt.Sprintf("set weight %s/%s %d", h.Backend, down, w.Of(down)))
	if err != nil {
		return err
	}
	got, err := h.Weights(ctx)
	if err != nil {
		return err
	}
	if got != w {
		return fmt.Errorf("haproxy: backend %s reports %s after setting %s", h.Backend, got, w)
	}
	return nil
}

// Weights reads both servers' current weights.
func (h *HAProxy) Weights(ctx context.Context) (rollout.Weights, error) {
	out, err := h.Command(ctx, fmt.Sprintf("get weight %s/blue; get weight %s/green", h.Backend, h.Backend))
	if err != nil {
		return rollout.Weights{}, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var vals []int
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.Atoi(f[0])
		if err != nil {
			return rollout.Weights{}, fmt.Errorf("haproxy: get weight %s: %s (does backend %s have servers named blue and green?)", h.Backend, l, h.Backend)
		}
		vals = append(vals, v)
	}
	if len(vals) != 2 {
		return rollout.Weights{}, fmt.Errorf("haproxy: get weight %s: unexpected answer %q", h.Backend, out)
	}
	return rollout.Weights{Blue: vals[0], Green: vals[1]}, nil
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
		slot := rollout.Slot(rec[col["svname"]])
		if slot != rollout.Blue && slot != rollout.Green {
			continue
		}
		var total int64
		for _, c := range []string{"hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"} {
			total += num(rec, c)
		}
		res[slot] = rollout.Counters{
			Requests:      total + num(rec, "eresp"),
			Errors:        num(rec, "hrsp_5xx") + num(rec, "eresp"),
			AvgResponseMs: num(rec, "rtime"),
		}
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("haproxy: show stat has no servers blue and green in backend %s", h.Backend)
	}
	return res, nil
}
