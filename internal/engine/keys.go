package engine

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-units"

	"github.com/vmctl/vmctl/internal/stack"
)

// honouredKeys are the compose service keys up carries into the container
// (containerSpec and hostExtras) or acts on itself (build, depends_on).
var honouredKeys = []string{
	"image", "build", "depends_on", "command", "entrypoint", "environment", "labels", "ports", "expose",
	"working_dir", "user", "hostname", "domainname", "tty", "stdin_open", "stop_signal", "stop_grace_period",
	"healthcheck", "restart", "privileged", "cap_add", "cap_drop", "extra_hosts", "init", "read_only",
	"security_opt", "shm_size", "runtime", "group_add", "sysctls", "dns", "dns_search", "dns_opt", "tmpfs",
	"logging", "log_driver", "log_opt", "mem_limit", "mem_reservation", "memswap_limit", "mem_swappiness",
	"cpus", "cpu_shares", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpuset", "cpu_count",
	"cpu_percent", "pids_limit", "oom_kill_disable", "oom_score_adj", "ulimits", "devices", "device_cgroup_rules",
	"cgroup", "cgroup_parent", "ipc", "pid", "uts", "userns_mode", "isolation", "storage_opt", "volumes",
	"volumes_from", "container_name", "network_mode", "networks", "gpus",
	"deploy", "scale", "pull_policy", "platform", // within limits: see checkKeys
}

// irrelevantKeys are consumed before up sees the service, or concern other commands.
var irrelevantKeys = []string{
	"profiles", "extends", "env_file", "label_file", // resolved by the compose loader
	"attach",  // which output a foreground compose up prints; vmctl up prints none
	"develop", // vmctl watch's
}

// keyHints say what to do instead for the refused keys people reach for most.
var keyHints = map[string]string{
	"secrets":        "mount the file with volumes (read_only) or pass the value in environment",
	"configs":        "mount the file with volumes (read_only)",
	"links":          "services reach each other by name on the project network",
	"external_links": "attach the service to the other container's network under networks",
	"mac_address":    "set it on the network under networks",
	"blkio_config":   "limit I/O outside vmctl, or run the stack with docker compose",
}

// composeKeys are the service keys of the compose model and where each lives.
var composeKeys = sync.OnceValue(func() map[string][]int {
	out := map[string][]int{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[types.ServiceConfig]()) {
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.Anonymous && key != "" && key != "-" && key != "name" && !strings.HasPrefix(key, "#") {
			out[key] = f.Index
		}
	}
	return out
})

// CheckKeys refuses a service that sets a compose key up would otherwise
// drop without a word: one line naming the service and its keys. It runs
// before up changes anything.
func CheckKeys(st *stack.Stack, services []string) error {
	for _, name := range services {
		svc, ok := st.Project.Services[name]
		if !ok {
			continue
		}
		if err := checkKeys(svc); err != nil {
			return err
		}
	}
	return nil
}

func checkKeys(svc types.ServiceConfig) error {
	v := reflect.ValueOf(svc)
	var bad []string
	for key, index := range composeKeys() {
		if v.FieldByIndex(index).IsZero() || slices.Contains(irrelevantKeys, key) {
			continue
		}
		if !slices.Contains(honouredKeys, key) {
			bad = append(bad, key)
		}
	}
	sort.Strings(bad)
	bad = append(bad, checkLimits(svc)...)
	if len(bad) == 0 {
		return nil
	}
	hint := "remove it, or run this stack with docker compose"
	if len(bad) > 1 {
		hint = "remove them, or run this stack with docker compose"
	}
	if h, ok := keyHints[bad[0]]; ok && len(bad) == 1 {
		hint = h
	}
	return fmt.Errorf("service %s: vmctl up does not support %s: %s", svc.Name, strings.Join(bad, ", "), hint)
}

// checkLimits names the values of honoured keys that up cannot carry out.
func checkLimits(svc types.ServiceConfig) []string {
	var bad []string
	if svc.Scale != nil && *svc.Scale > 1 {
		bad = append(bad, fmt.Sprintf("scale %d (one container per service)", *svc.Scale))
	}
	switch svc.PullPolicy {
	case "", types.PullPolicyMissing, types.PullPolicyIfNotPresent, types.PullPolicyBuild, types.PullPolicyNever:
	default:
		bad = append(bad, fmt.Sprintf("pull_policy %s (vmctl builds and never pulls)", svc.PullPolicy))
	}
	if svc.Platform != "" && !strings.HasPrefix(svc.Platform, "linux/"+runtime.GOARCH) {
		bad = append(bad, fmt.Sprintf("platform %s (images are built for linux/%s)", svc.Platform, runtime.GOARCH))
	}
	d := svc.Deploy
	if d == nil {
		return bad
	}
	if d.Replicas != nil && *d.Replicas > 1 {
		bad = append(bad, fmt.Sprintf("deploy.replicas %d (one container per service)", *d.Replicas))
	}
	if d.RestartPolicy != nil {
		bad = append(bad, "deploy.restart_policy (use restart)")
	}
	if l := d.Resources.Limits; l != nil && (l.Pids != 0 || len(l.Devices) > 0 || len(l.GenericResources) > 0) {
		bad = append(bad, "deploy.resources.limits other than cpus and memory")
	}
	if r := d.Resources.Reservations; r != nil {
		if r.NanoCPUs != 0 || r.Pids != 0 || len(r.GenericResources) > 0 {
			bad = append(bad, "deploy.resources.reservations other than memory and GPU devices")
		}
		for _, dev := range r.Devices {
			if !slices.Contains(dev.Capabilities, "gpu") {
				bad = append(bad, fmt.Sprintf("deploy.resources.reservations.devices with capabilities %s (only gpu)", strings.Join(dev.Capabilities, ",")))
			}
		}
	}
	return bad
}

// hostExtras maps the keys containerSpec leaves to hostExtras onto the
// container, as docker compose maps them.
func hostExtras(project *types.Project, svc types.ServiceConfig, host *container.HostConfig) {
	r := &host.Resources
	for name, u := range svc.Ulimits {
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		r.Ulimits = append(r.Ulimits, &units.Ulimit{Name: name, Soft: soft, Hard: hard})
	}
	sort.Slice(r.Ulimits, func(i, j int) bool { return r.Ulimits[i].Name < r.Ulimits[j].Name })
	for _, d := range svc.Devices {
		perms := d.Permissions
		if perms == "" {
			perms = "rwm"
		}
		r.Devices = append(r.Devices, container.DeviceMapping{PathOnHost: d.Source, PathInContainer: d.Target, CgroupPermissions: perms})
	}
	r.DeviceCgroupRules = svc.DeviceCgroupRules
	r.CgroupParent = svc.CgroupParent
	r.CPUPeriod, r.CPUQuota = svc.CPUPeriod, svc.CPUQuota
	r.CPURealtimePeriod, r.CPURealtimeRuntime = svc.CPURTPeriod, svc.CPURTRuntime
	r.CpusetCpus = svc.CPUSet
	r.CPUCount, r.CPUPercent = svc.CPUCount, int64(svc.CPUPercent)
	if svc.MemReservation != 0 && r.MemoryReservation == 0 {
		r.MemoryReservation = int64(svc.MemReservation)
	}
	if svc.MemSwapLimit != 0 {
		r.MemorySwap = int64(svc.MemSwapLimit)
	}
	if svc.MemSwappiness != 0 {
		s := int64(svc.MemSwappiness)
		r.MemorySwappiness = &s
	}
	if svc.OomKillDisable {
		r.OomKillDisable = &svc.OomKillDisable
	}
	host.OomScoreAdj = int(svc.OomScoreAdj)
	host.CgroupnsMode = container.CgroupnsMode(svc.Cgroup)
	host.IpcMode = container.IpcMode(svc.Ipc)
	host.PidMode = container.PidMode(svc.Pid)
	host.UTSMode = container.UTSMode(svc.Uts)
	host.UsernsMode = container.UsernsMode(svc.UserNSMode)
	host.Isolation = container.Isolation(svc.Isolation)
	host.StorageOpt = svc.StorageOpt
	if svc.Logging == nil && svc.LogDriver != "" {
		host.LogConfig = container.LogConfig{Type: svc.LogDriver, Config: svc.LogOpt}
	}
	for _, from := range svc.VolumesFrom {
		// service:NAME[:ro] names a service of this project, container:NAME a container.
		if c, ok := strings.CutPrefix(from, "container:"); ok {
			host.VolumesFrom = append(host.VolumesFrom, c)
			continue
		}
		name, mode, _ := strings.Cut(strings.TrimPrefix(from, "service:"), ":")
		ref := containerName(project.Name, name)
		if other, ok := project.Services[name]; ok && other.ContainerName != "" {
			ref = other.ContainerName
		}
		if mode != "" {
			ref += ":" + mode
		}
		host.VolumesFrom = append(host.VolumesFrom, ref)
	}
}
