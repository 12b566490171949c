package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// HealthEndpoint is where the host probes a service over HTTP.
type HealthEndpoint struct {
	Path          string
	ContainerPort uint32
	HostIP        string
	HostPort      string
}

// URL is the probe address; a wildcard host IP is reached through loopback.
func (h HealthEndpoint) URL() string {
	ip := h.HostIP
	if ip == "" || ip == "0.0.0.0" || ip == "::" {
		ip = "127.0.0.1"
	}
	return fmt.Sprintf("http://%s:%s%s", ip, h.HostPort, h.Path)
}

// Health returns the service's HTTP health endpoint, if it declares one and
// publishes the port it is served on.
func (s *Stack) Health(name string) (HealthEndpoint, bool) {
	e := s.ext[name]
	if e.HealthPath == "" {
		return HealthEndpoint{}, false
	}
	for _, p := range s.Project.Services[name].Ports {
		if p.Published == "" || (e.HealthPort != 0 && p.Target != e.HealthPort) {
			continue
		}
		if p.Protocol != "" && p.Protocol != "tcp" {
			continue
		}
		return HealthEndpoint{Path: e.HealthPath, ContainerPort: p.Target, HostIP: p.HostIP, HostPort: firstPort(p.Published)}, true
	}
	return HealthEndpoint{}, false
}

// PublishedURL is the first published TCP port as a URL, for the summary table.
func PublishedURL(svc types.ServiceConfig) string {
	for _, p := range svc.Ports {
		if p.Published == "" || (p.Protocol != "" && p.Protocol != "tcp") {
			continue
		}
		ip := p.HostIP
		if ip == "" || ip == "0.0.0.0" {
			ip = "127.0.0.1"
		}
		return fmt.Sprintf("http://%s:%s", ip, firstPort(p.Published))
	}
	return ""
}

// firstPort takes the start of a published range ("8000-8005").
func firstPort(published string) string {
	if i := strings.IndexByte(published, '-'); i > 0 {
		return published[:i]
	}
	return published
}

// HostPorts lists the host ports a service publishes, ranges expanded.
func HostPorts(svc types.ServiceConfig) ([]HostPort, error) {
	var out []HostPort
	for _, p := range svc.Ports {
		if p.Published == "" {
			continue
		}
		lo, hi := p.Published, p.Published
		if i := strings.IndexByte(p.Published, '-'); i > 0 {
			lo, hi = p.Published[:i], p.Published[i+1:]
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a > b {
			return nil, fmt.Errorf("service %s: published port %q is not a port or range", svc.Name, p.Published)
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		for n := a; n <= b; n++ {
			out = append(out, HostPort{IP: p.HostIP, Port: n, Protocol: proto})
		}
	}
	return out, nil
}

// HostPort is one published host address.
type HostPort struct {
	IP       string
	Port     int
	Protocol string
}

// GPURequests returns the service's GPU reservations (deploy.resources.
// reservations.devices with the "gpu" capability, and the gpus key).
func GPURequests(svc types.ServiceConfig) []types.DeviceRequest {
	var out []types.DeviceRequest
	if svc.Deploy != nil && svc.Deploy.Resources.Reservations != nil {
		for _, d := range svc.Deploy.Resources.Reservations.Devices {
			for _, c := range d.Capabilities {
				if c == "gpu" {
					out = append(out, d)
					break
				}
			}
		}
	}
	return append(out, svc.Gpus...)
}

// ConfigHash digests everything that shapes a service's container, so an
// unchanged service keeps its container and a changed one is recreated.
// extra carries inputs from outside the compose file (image ID, GPU mode).
func ConfigHash(svc types.ServiceConfig, extra ...string) (string, error) {
	c := svc
	// Build inputs reach the hash through the image ID; dependency edges and
	// vmctl's probes do not change the container itself.
	c.Build = nil
	c.DependsOn = nil
	c.Extensions = nil
	c.Scale = nil
	c.PullPolicy = ""
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("hash service %s: %w", svc.Name, err)
	}
	h := sha256.New()
	h.Write(b)
	for _, e := range extra {
		h.Write([]byte{0})
		h.Write([]byte(e))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
