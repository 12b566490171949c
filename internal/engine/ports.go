package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/vmctl/vmctl/internal/stack"
)

// checkDuplicatePorts refuses a stack that publishes one host port twice.
func checkDuplicatePorts(st *stack.Stack, names []string) error {
	owner := map[string]string{}
	for _, n := range names {
		ports, err := stack.HostPorts(st.Project.Services[n])
		if err != nil {
			return err
		}
		for _, p := range ports {
			key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
			if prev, ok := owner[key]; ok && prev != n {
				return fmt.Errorf("host port %s is published by both %s and %s: give one of them another port", key, prev, n)
			}
			owner[key] = n
		}
	}
	return nil
}

// PortConflict is a host port a service publishes that something else holds.
type PortConflict struct {
	Service string `json:"service"`
	Port    int    `json:"port"`
	Holder  string `json:"holder"`
}

func (c PortConflict) Error() string {
	return fmt.Sprintf("service %s: host port %d is already in use by %s: stop it, or publish %s on another port", c.Service, c.Port, c.Holder, c.Service)
}

// PortConflicts lists the TCP host ports the services publish that are
// held by something other than the containers ours() accepts, naming the
// container or local process that holds each.
func (e *Engine) PortConflicts(ctx context.Context, st *stack.Stack, services []string, ours func(container.Summary) bool) ([]PortConflict, error) {
	running, err := e.api.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []PortConflict
	for _, n := range services {
		ports, err := stack.HostPorts(st.Project.Services[n])
		if err != nil {
			return nil, err
		}
		for _, hp := range ports {
			if hp.Protocol != "tcp" {
				continue
			}
			holder, mine := "", false
			for _, c := range running {
				for _, cp := range c.Ports {
					if int(cp.PublicPort) == hp.Port && cp.Type == "tcp" {
						holder = "container " + strings.TrimPrefix(c.Names[0], "/")
						if proj := c.Labels[LabelProject]; proj != "" {
							holder += " (project " + proj + ")"
						}
						mine = mine || ours(c)
					}
				}
			}
			if mine {
				continue
			}
			if holder == "" {
				ip := hp.IP
				if ip == "" {
					ip = "0.0.0.0"
				}
				l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(hp.Port)))
				if err == nil {
					l.Close()
					continue
				}
				holder = processOnPort(hp.Port)
			}
			out = append(out, PortConflict{Service: n, Port: hp.Port, Holder: holder})
		}
	}
	return out, nil
}

// checkPorts makes sure every host port a new or started container will
// publish is free; the container a service replaces frees its own ports.
func (e *Engine) checkPorts(ctx context.Context, st *stack.Stack, plan map[string]*planned) error {
	replaced := map[string]bool{}
	var services []string
	for _, n := range st.Names() {
		p, ok := plan[n]
		if !ok || p.act == actKeep {
			continue
		}
		services = append(services, n)
		if p.existing != nil {
			replaced[p.existing.ID] = true
		}
	}
	conflicts, err := e.PortConflicts(ctx, st, services, func(c container.Summary) bool { return replaced[c.ID] })
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		return conflicts[0]
	}
	return nil
}

// processOnPort finds the local process listening on a TCP port through
// /proc (Linux, and only processes this user may inspect).
func processOnPort(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) > 0 {
		procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
		for _, fd := range procs {
			if link, err := os.Readlink(fd); err == nil && inodes[link] {
				pidDir := filepath.Dir(filepath.Dir(fd))
				comm, _ := os.ReadFile(filepath.Join(pidDir, "comm"))
				return fmt.Sprintf("process %s (pid %s)", strings.TrimSpace(string(comm)), filepath.Base(pidDir))
			}
		}
	}
	return "another process"
}
