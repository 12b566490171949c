//go:build !cgo || !linux

package gpu

// NVMLSupported says whether this build can load NVML.
const NVMLSupported = false

// ReadHost reports that this build cannot read NVML: go-nvml needs cgo and
// Linux, and a build without them must still compile and say so.
func ReadHost() Inventory {
	return Inventory{GPUs: []Device{}, Unsupported: true, Problem: "NVML is not available on this build of vmctl (built without cgo, or not for Linux)"}
}
