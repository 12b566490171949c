//go:build cgo && linux

package gpu

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVMLSupported says whether this build can load NVML.
const NVMLSupported = true

// ReadHost reads the host's GPUs through the system's libnvidia-ml.so.1.
func ReadHost() Inventory { return Read(nvml.New()) }

// Read takes the inventory through an NVML implementation (the real
// library, or go-nvml's mock servers in tests). It never crashes the
// process: after a failed Init nothing else in NVML is touched, and a
// symbol an older driver lacks is looked up before it is called.
func Read(lib nvml.Interface) Inventory {
	inv := Inventory{GPUs: []Device{}}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		inv.Problem = returnText(ret)
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			inv.NoDriver = true
			inv.Problem = "libnvidia-ml.so.1 was not found"
		}
		return inv
	}
	// Error strings are taken while the library is loaded; Shutdown unloads it.
	defer lib.Shutdown()
	inv.Available = true
	var ret nvml.Return
	if inv.DriverVersion, ret = lib.SystemGetDriverVersion(); ret != nvml.SUCCESS {
		inv.Problem = "driver version: " + returnText(ret)
	}
	if inv.NVMLVersion, ret = lib.SystemGetNVMLVersion(); ret != nvml.SUCCESS {
		inv.NVMLVersion = ""
	}
	if inv.CUDADriverVersion, ret = lib.SystemGetCudaDriverVersion(); ret != nvml.SUCCESS {
		inv.CUDADriverVersion = 0
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		inv.Available = false
		inv.Problem = "device count: " + returnText(ret)
		return inv
	}
	hasMemV2 := lib.Extensions().LookupSymbol("nvmlDeviceGetMemoryInfo_v2") == nil
	for i := 0; i < n; i++ {
		inv.GPUs = append(inv.GPUs, readDevice(lib, i, hasMemV2))
	}
	return inv
}

func readDevice(lib nvml.Interface, i int, hasMemV2 bool) Device {
	d := Device{Index: i}
	dev, ret := lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		d.Problems = append(d.Problems, "handle: "+returnText(ret))
		return d
	}
	if d.Name, ret = dev.GetName(); ret != nvml.SUCCESS {
		d.Problems = append(d.Problems, "name: "+returnText(ret))
	}
	if d.UUID, ret = dev.GetUUID(); ret != nvml.SUCCESS {
		d.Problems = append(d.Problems, "uuid: "+returnText(ret))
	}
	// The v2 call counts memory the driver reserves as used; drivers before
	// R510 do not export it.
	if hasMemV2 {
		if m, ret := dev.GetMemoryInfo_v2(); ret == nvml.SUCCESS {
			d.MemoryTotalMiB, d.MemoryFreeMiB = m.Total>>20, m.Free>>20
		} else {
			hasMemV2 = false
		}
	}
	if !hasMemV2 {
		if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			d.MemoryTotalMiB, d.MemoryFreeMiB = m.Total>>20, m.Free>>20
		} else {
			d.Problems = append(d.Problems, "memory: "+returnText(ret))
		}
	}
	if d.CCMajor, d.CCMinor, ret = dev.GetCudaComputeCapability(); ret != nvml.SUCCESS {
		d.Problems = append(d.Problems, "compute capability: "+returnText(ret))
	}
	// Utilisation and temperature are informative; many GPUs (and MIG) do not report them.
	if u, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
		d.Utilization = &u.Gpu
	}
	if t, ret := dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		d.TemperatureC = &t
	}
	return d
}

// returnText names an NVML return code without calling into the library
// (nvmlErrorString is itself an NVML call, unsafe after a failed Init).
func returnText(r nvml.Return) string {
	switch r {
	case nvml.ERROR_UNINITIALIZED:
		return "NVML is not initialised"
	case nvml.ERROR_NOT_SUPPORTED:
		return "not supported"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission (run as a user that may open /dev/nvidia*)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "the NVIDIA kernel driver is not loaded"
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 was not found"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		return "this driver lacks the function"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "driver/library version mismatch (reboot after a driver upgrade)"
	case nvml.ERROR_GPU_IS_LOST:
		return "the GPU has fallen off the bus"
	case nvml.ERROR_INSUFFICIENT_SIZE:
		return "buffer too small"
	}
	return fmt.Sprintf("NVML error %d", int32(r))
}
