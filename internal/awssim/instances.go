package awssim

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
)

// Instance is a simulated EC2 instance in an Auto Scaling group. SSM runs
// commands on it (nvidia-smi answers from GPU) and ECS registers it as a
// container instance.
type Instance struct {
	ID           string // i-…; made up when empty
	Group        string // its Auto Scaling group
	InstanceType string // default g4dn.xlarge with a GPU, m5.large without
	AZ           string // default ap-northeast-1a / 1c, alternating
	Lifecycle    string // Auto Scaling lifecycle state; default InService
	ImageID      string // the AMI its launch template names
	GPU          *GPUFacts
}

// GPUFacts is what the instance's NVIDIA driver reports about its GPUs.
type GPUFacts struct {
	Model             string // as nvidia-smi names it, e.g. "Tesla T4"
	DriverVersion     string // e.g. "535.104.05"
	CUDAVersion       string // the driver's CUDA version, e.g. "12.2"
	MemoryMiB         int    // per GPU, e.g. 15360
	ComputeCapability string // e.g. "7.5"
	Count             int    // GPUs on the instance; default 1
}

// T4 is a g4dn.xlarge's GPU with a driver that runs CUDA 11.8 fully.
func T4() *GPUFacts {
	return &GPUFacts{Model: "Tesla T4", DriverVersion: "535.104.05", CUDAVersion: "12.2", MemoryMiB: 15360, ComputeCapability: "7.5", Count: 1}
}

// fleet holds the Auto Scaling groups and their instances.
type fleet struct {
	mu        sync.Mutex
	groups    map[string]*asGroup
	instances map[string]*Instance
	launched  map[string]int // launch order
	launches  int
	azTurn    int
}

func newFleet() *fleet {
	return &fleet{groups: map[string]*asGroup{}, instances: map[string]*Instance{}, launched: map[string]int{}}
}

func newInstanceID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return "i-" + hex.EncodeToString(b)[:17]
}

func (g *GPUFacts) clone() *GPUFacts {
	if g == nil {
		return nil
	}
	c := *g
	return &c
}

func (in Instance) clone() Instance {
	in.GPU = in.GPU.clone()
	return in
}

// launch adds an instance to the fleet, filling in the defaults; f.mu held.
func (f *fleet) launch(in Instance) Instance {
	in = in.clone()
	if in.ID == "" {
		in.ID = newInstanceID()
	}
	if in.InstanceType == "" {
		in.InstanceType = "m5.large"
		if in.GPU != nil {
			in.InstanceType = "g4dn.xlarge"
		}
	}
	if in.AZ == "" {
		in.AZ = []string{"ap-northeast-1a", "ap-northeast-1c"}[f.azTurn%2]
		f.azTurn++
	}
	if in.Lifecycle == "" {
		in.Lifecycle = "InService"
	}
	if in.GPU != nil && in.GPU.Count == 0 {
		in.GPU.Count = 1
	}
	f.instances[in.ID] = &in
	f.launches++
	f.launched[in.ID] = f.launches
	return in.clone()
}

// terminate removes an instance from the fleet; f.mu held.
func (f *fleet) terminate(id string) {
	delete(f.instances, id)
	delete(f.launched, id)
}

// members is a group's instances, oldest launch first; f.mu held.
func (f *fleet) members(group string) []Instance {
	var out []Instance
	for _, in := range f.instances {
		if in.Group == group {
			out = append(out, in.clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return f.launched[out[i].ID] < f.launched[out[j].ID] })
	return out
}

// Instance looks an instance up by ID.
func (s *Sim) Instance(id string) (Instance, bool) {
	s.fleet.mu.Lock()
	defer s.fleet.mu.Unlock()
	in, ok := s.fleet.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.clone(), true
}

// Instances is every running instance, by group and launch.
func (s *Sim) Instances() []Instance {
	s.fleet.mu.Lock()
	defer s.fleet.mu.Unlock()
	names := make([]string, 0, len(s.fleet.groups))
	for name := range s.fleet.groups {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []Instance
	for _, name := range names {
		out = append(out, s.fleet.members(name)...)
	}
	return out
}

// GroupInstances is a group's running instances, oldest launch first.
func (s *Sim) GroupInstances(group string) []Instance {
	s.fleet.mu.Lock()
	defer s.fleet.mu.Unlock()
	return s.fleet.members(group)
}

// SetInstanceGPU changes what an instance's driver reports (an upgrade, or a
// driver too old for CUDA 11.8); nil takes its GPU away. It says whether the
// instance exists.
func (s *Sim) SetInstanceGPU(id string, gpu *GPUFacts) bool {
	s.fleet.mu.Lock()
	defer s.fleet.mu.Unlock()
	in, ok := s.fleet.instances[id]
	if ok {
		in.GPU = gpu.clone()
		if in.GPU != nil && in.GPU.Count == 0 {
			in.GPU.Count = 1
		}
	}
	return ok
}
