// Package gpu answers whether a host can run OpenVoice: it reads the NVIDIA
// GPUs through NVML, checks them against the CUDA 11.8 + cuDNN 8 rules, and
// checks that the Docker Engine can hand a GPU to a container. Verdicts are
// data (level, reasons, fixes) so the CLI, doctor and up all decide alike.
package gpu

import (
	"fmt"
	"strconv"
	"strings"
)

// Inventory is what NVML says about the host.
type Inventory struct {
	// Available is false when NVML could not be read; Problem says why.
	Available bool   `json:"available"`
	Problem   string `json:"problem,omitempty"`
	// NoDriver marks the common case of a host without the NVIDIA driver.
	NoDriver bool `json:"no_driver,omitempty"`
	// Unsupported marks a vmctl build that cannot load NVML (no cgo, not Linux).
	Unsupported bool `json:"unsupported,omitempty"`

	DriverVersion     string   `json:"driver_version,omitempty"`
	NVMLVersion       string   `json:"nvml_version,omitempty"`
	CUDADriverVersion int      `json:"cuda_driver_version,omitempty"` // 11080 means 11.8
	GPUs              []Device `json:"gpus"`
}

// CUDAVersion renders the driver's CUDA version as "major.minor".
func (inv Inventory) CUDAVersion() string {
	if inv.CUDADriverVersion == 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", inv.CUDADriverVersion/1000, inv.CUDADriverVersion%1000/10)
}

// Device is one GPU.
type Device struct {
	Index          int     `json:"index"`
	Name           string  `json:"name"`
	UUID           string  `json:"uuid"`
	MemoryTotalMiB uint64  `json:"memory_total_mib"`
	MemoryFreeMiB  uint64  `json:"memory_free_mib"`
	CCMajor        int     `json:"compute_capability_major"`
	CCMinor        int     `json:"compute_capability_minor"`
	Utilization    *uint32 `json:"utilization_percent,omitempty"` // nil: not supported by this GPU/driver
	TemperatureC   *uint32 `json:"temperature_c,omitempty"`
	// Problems lists what NVML could not read for this GPU.
	Problems []string `json:"problems,omitempty"`
}

// ComputeCapability renders "major.minor".
func (d Device) ComputeCapability() string { return fmt.Sprintf("%d.%d", d.CCMajor, d.CCMinor) }

// Level orders verdicts from best to worst.
type Level string

// The verdict levels.
const (
	Ready        Level = "ready"
	ReadyWarning Level = "ready-with-warning"
	NotReady     Level = "not-ready"
	Unknown      Level = "unknown" // could not tell
)

func (l Level) rank() int {
	switch l {
	case Ready:
		return 0
	case ReadyWarning:
		return 1
	case Unknown:
		return 2
	}
	return 3
}

// OK says whether the level lets OpenVoice run on the GPU.
func (l Level) OK() bool { return l == Ready || l == ReadyWarning }

// Verdict is a level with the reasons for it and the steps that fix it.
type Verdict struct {
	Level   Level    `json:"level"`
	Reasons []string `json:"reasons,omitempty"`
	Fixes   []string `json:"fixes,omitempty"`
}

// worse lowers v to l (keeping the worst level) and records why.
func (v *Verdict) worse(l Level, reason, fix string) {
	if l.rank() > v.Level.rank() {
		v.Level = l
	}
	if reason != "" {
		v.Reasons = append(v.Reasons, reason)
	}
	if fix != "" && !contains(v.Fixes, fix) {
		v.Fixes = append(v.Fixes, fix)
	}
}

func (v *Verdict) merge(o Verdict) {
	if o.Level.rank() > v.Level.rank() {
		v.Level = o.Level
	}
	v.Reasons = append(v.Reasons, o.Reasons...)
	for _, f := range o.Fixes {
		if !contains(v.Fixes, f) {
			v.Fixes = append(v.Fixes, f)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Summary is the verdict in one line.
func (v Verdict) Summary() string {
	if len(v.Reasons) == 0 {
		return string(v.Level)
	}
	return string(v.Level) + ": " + strings.Join(v.Reasons, "; ")
}

// Requirements is what OpenVoice needs, from the environment file.
type Requirements struct {
	Count        int    `json:"count"`
	MinMemoryMiB uint64 `json:"min_memory_mib"`
}

// The CUDA 11.8 rules (NVIDIA's CUDA toolkit release notes, table 3: CUDA
// 11.8 GA needs driver >= 520.61.05 on Linux; CUDA 11.x minor-version
// compatibility starts at 450.80.02) and cuDNN 8's range of architectures.
var (
	fullSupportDriver  = version{520, 61, 5}
	minorCompatDriver  = version{450, 80, 2}
	wantCUDA           = 11080
	minCC, maxCC       = [2]int{5, 0}, [2]int{9, 0}
	fixDriver          = "install NVIDIA driver 520.61.05 or newer (the 535 or 550 branch, e.g. apt-get install nvidia-driver), then reboot"
	fixNoDriver        = "install the NVIDIA driver (520.61.05 or newer) on a host with an NVIDIA GPU; on AWS use a g4dn instance with the Deep Learning AMI"
	fixCPUMode         = "or run OpenVoice in CPU mode: vmctl up --gpu off"
	fixUnsupportedHost = "use a Linux build of vmctl with cgo (the release binaries are), or run vmctl gpu on the GPU host itself"
)

// HostReport is the verdict for each GPU and for the host.
type HostReport struct {
	Inventory Inventory    `json:"inventory"`
	Required  Requirements `json:"required"`
	GPUs      []GPUVerdict `json:"gpu_verdicts"`
	Driver    Verdict      `json:"driver"`
	Host      Verdict      `json:"host"`
}

// GPUVerdict is one GPU's verdict.
type GPUVerdict struct {
	Index   int     `json:"index"`
	Name    string  `json:"name"`
	Verdict Verdict `json:"verdict"`
}

// Evaluate applies the CUDA 11.8 rules to an inventory.
func Evaluate(inv Inventory, req Requirements) HostReport {
	if req.Count <= 0 {
		req.Count = 1
	}
	r := HostReport{Inventory: inv, Required: req, Driver: Verdict{Level: Ready}, Host: Verdict{Level: Ready}}
	switch {
	case inv.Unsupported:
		r.Host.worse(Unknown, inv.Problem, fixUnsupportedHost)
		r.Driver = r.Host
		return r
	case inv.NoDriver:
		r.Host.worse(NotReady, "no NVIDIA driver: "+inv.Problem, fixNoDriver)
		r.Host.Fixes = append(r.Host.Fixes, fixCPUMode)
		r.Driver = r.Host
		return r
	case !inv.Available:
		r.Host.worse(NotReady, "NVML failed: "+inv.Problem, "check the driver with nvidia-smi; a driver/library version mismatch needs a reboot")
		r.Driver = r.Host
		return r
	}

	r.Driver = driverVerdict(inv)
	r.Host.merge(r.Driver)

	readyGPUs := 0
	for _, d := range inv.GPUs {
		v := deviceVerdict(d, req)
		if v.Level.OK() {
			readyGPUs++
		}
		r.GPUs = append(r.GPUs, GPUVerdict{Index: d.Index, Name: d.Name, Verdict: v})
	}
	switch {
	case len(inv.GPUs) == 0:
		r.Host.worse(NotReady, "no NVIDIA GPU found by the driver", "check that the GPU is attached (lspci | grep -i nvidia) and visible to nvidia-smi")
	case readyGPUs < req.Count:
		var why []string
		for _, g := range r.GPUs {
			if !g.Verdict.Level.OK() {
				why = append(why, fmt.Sprintf("GPU %d (%s): %s", g.Index, g.Name, strings.Join(g.Verdict.Reasons, ", ")))
			}
		}
		r.Host.worse(NotReady, fmt.Sprintf("%d of %d GPUs can run OpenVoice, %d needed: %s", readyGPUs, len(inv.GPUs), req.Count, strings.Join(why, "; ")), "")
		for _, g := range r.GPUs {
			for _, f := range g.Verdict.Fixes {
				r.Host.worse(NotReady, "", f)
			}
		}
	default:
		for _, g := range r.GPUs {
			if g.Verdict.Level == ReadyWarning {
				r.Host.worse(ReadyWarning, fmt.Sprintf("GPU %d: %s", g.Index, strings.Join(g.Verdict.Reasons, ", ")), "")
			}
		}
	}
	if !r.Host.Level.OK() {
		r.Host.Fixes = append(r.Host.Fixes, fixCPUMode)
	}
	return r
}

func driverVerdict(inv Inventory) Verdict {
	v := Verdict{Level: Ready}
	drv, err := parseVersion(inv.DriverVersion)
	if err != nil {
		v.worse(Unknown, fmt.Sprintf("driver version %q is not readable", inv.DriverVersion), "")
		return v
	}
	cuda := inv.CUDADriverVersion
	switch {
	case !drv.less(fullSupportDriver):
		if cuda != 0 && cuda < wantCUDA {
			// The cross-check disagrees with the driver branch: trust NVML.
			v.worse(NotReady, fmt.Sprintf("driver %s reports CUDA %s, below 11.8", inv.DriverVersion, inv.CUDAVersion()), fixDriver)
		}
	case !drv.less(minorCompatDriver):
		if cuda != 0 && cuda < 11000 {
			v.worse(NotReady, fmt.Sprintf("driver %s reports CUDA %s, below 11.0", inv.DriverVersion, inv.CUDAVersion()), fixDriver)
			break
		}
		why := fmt.Sprintf("driver %s is older than 520.61.05: CUDA 11.8 runs only under minor-version compatibility", inv.DriverVersion)
		if cuda != 0 && cuda < wantCUDA {
			why += fmt.Sprintf(" (the driver's own CUDA is %s)", inv.CUDAVersion())
		}
		v.worse(ReadyWarning, why+"; PTX JIT compilation is unavailable", fixDriver)
	default:
		v.worse(NotReady, fmt.Sprintf("driver %s is older than 450.80.02, the oldest that can run CUDA 11.8", inv.DriverVersion), fixDriver)
	}
	return v
}

func deviceVerdict(d Device, req Requirements) Verdict {
	v := Verdict{Level: Ready}
	cc := [2]int{d.CCMajor, d.CCMinor}
	switch {
	case d.CCMajor == 0:
		v.worse(Unknown, "compute capability unknown", "")
	case ccLess(cc, minCC):
		v.worse(NotReady, fmt.Sprintf("compute capability %s is below 5.0, the oldest cuDNN 8 supports", d.ComputeCapability()), "use a Maxwell (5.0) or newer GPU, e.g. a T4 on g4dn")
	case ccLess(maxCC, cc):
		v.worse(NotReady, fmt.Sprintf("compute capability %s is above 9.0: CUDA 11.8 and cuDNN 8 have no code for it", d.ComputeCapability()), "run OpenVoice on a GPU of compute capability 5.0-9.0 (T4, A10G, A100, H100, H200), or rebuild it on CUDA 12.8+")
	}
	if req.MinMemoryMiB > 0 && d.MemoryTotalMiB < req.MinMemoryMiB {
		v.worse(NotReady, fmt.Sprintf("%d MiB of GPU memory, OpenVoice needs %d MiB", d.MemoryTotalMiB, req.MinMemoryMiB), "use a GPU with more memory, or lower services.openvoice.gpu.min_memory_mib if OpenVoice fits")
	} else if req.MinMemoryMiB > 0 && d.MemoryFreeMiB < req.MinMemoryMiB && d.MemoryFreeMiB > 0 {
		v.worse(ReadyWarning, fmt.Sprintf("only %d MiB free now (other processes hold GPU memory)", d.MemoryFreeMiB), "")
	}
	for _, p := range d.Problems {
		v.worse(ReadyWarning, p, "")
	}
	return v
}

func ccLess(a, b [2]int) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// version is a driver version such as 535.104.05.
type version [3]int

func parseVersion(s string) (version, error) {
	var v version
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, fmt.Errorf("version %q", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return v, fmt.Errorf("version %q", s)
		}
		v[i] = n
	}
	return v, nil
}

func (v version) less(o version) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] < o[i]
		}
	}
	return false
}
