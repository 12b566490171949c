// Package environment reads environments/<name>.yaml: where and how the app's compose stack
// runs (local on the Docker Engine, or an AWS account with ECS on Fargate and GPU instances).
//
// The stack itself lives in compose/ and is the same everywhere; an environment only adds
// placement, sizes, scaling, deployment rules and references to managed stores and secrets.
// Files are validated strictly, and every problem is a *FieldError that names file, line and
// dotted field path, because a typo in a deploy target must fail before anything is deployed.
package environment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// AppSourceEnv names the variable that, when set and non-empty, replaces a local environment's
// app_source, so one checkout of vmctl can run any checkout of the app.
const AppSourceEnv = "VMCTL_APP_SOURCE"

// ErrUnknownEnvironment is wrapped by LoadNamed when no file has the requested name.
var ErrUnknownEnvironment = errors.New("unknown environment")

// Kind says where an environment runs.
type Kind string

// Kinds.
const (
	KindLocal Kind = "local"
	KindAWS   Kind = "aws"
)

// Placement says what runs a service's tasks on AWS.
type Placement string

// Placements.
const (
	PlacementFargate Placement = "fargate"
	PlacementEC2GPU  Placement = "ec2-gpu" // ECS on an EC2 Auto Scaling group of GPU instances
)

// Strategy says how a new release replaces the running one.
type Strategy string

// Strategies.
const (
	StrategyRolling   Strategy = "rolling"
	StrategyBlueGreen Strategy = "blue-green"
)

// Environment is one environments/<name>.yaml.
type Environment struct {
	Name string `yaml:"-"` // the file name without .yaml
	File string `yaml:"-"` // the path it was loaded from

	Kind        Kind   `yaml:"kind"`
	Description string `yaml:"description"`
	// Protected makes every write into the environment (push, deploy, promote, rollback,
	// infra apply, verify's probe task) need explicit approval, always: no other setting
	// turns that off. It is on for prod, and for staging as shipped.
	Protected bool `yaml:"protected"`
	// AppSourcePath is app_source as written (kind local only); AppSource resolves it.
	AppSourcePath string `yaml:"app_source"`
	AWS           *AWS   `yaml:"aws"` // kind aws only
	// Services holds per-service settings keyed by compose service name. Kind local may set
	// only gpu and environment.
	Services map[string]Service `yaml:"services"`

	dir string // absolute directory of File, taken at load so a later chdir changes nothing
}

// AWS is where and how an environment runs in one AWS account.
type AWS struct {
	AccountID string `yaml:"account_id"` // 12 digits; quote it in YAML
	Region    string `yaml:"region"`
	// Profile is the shared-config profile whose credentials reach this
	// account (e.g. an SSO profile); empty uses the ambient credentials.
	Profile  string `yaml:"profile,omitempty"`
	Cluster  string `yaml:"cluster"`  // ECS cluster name
	Registry string `yaml:"registry"` // image registry host[:port], normally ECR's
	// Domain is the public name users reach the app by (the ACM certificate's, in front
	// of the ALB); verify checks it over HTTPS, certificate included, and that plain HTTP
	// redirects. Empty: verify reaches the load balancer by its own DNS name.
	Domain string `yaml:"domain,omitempty"`
	// CertificateARN is the ACM certificate of Domain for the ALB's HTTPS listener; empty:
	// vmctl infra requests one for Domain (DNS validation, through HostedZoneID when set).
	CertificateARN string `yaml:"certificate_arn,omitempty"`
	// HostedZoneID is Domain's Route 53 zone: it validates the certificate vmctl infra
	// requests and points Domain at the load balancer. Empty: both are done by hand.
	HostedZoneID string     `yaml:"hosted_zone_id,omitempty"`
	Network      Network    `yaml:"network"`
	Deployment   Deployment `yaml:"deployment"`
	Schedule     *Schedule  `yaml:"schedule"` // nil: always on
	Logs         Logs       `yaml:"logs"`
	Stores       Stores     `yaml:"stores"`
	Alarms       Alarms     `yaml:"alarms"` // seed §7.3
	Budget       *Budget    `yaml:"budget"` // seed §6.3; vmctl infra requires it
}

// Alarms is where the foundation's CloudWatch alarms and budget alerts go: one SNS topic.
type Alarms struct {
	// Notify lists the topic's subscriptions: e-mail addresses, or https:// endpoints
	// (a Slack or PagerDuty webhook).
	Notify []string `yaml:"notify"`
}

// Budget is the environment's AWS Budget and cost anomaly alert.
type Budget struct {
	MonthlyUSD     int `yaml:"monthly_usd"`     // alerts at 80 % actual and 100 % forecast
	AnomalyPercent int `yaml:"anomaly_percent"` // a cost anomaly this far above expected alerts
}

// Network is the VPC the services run in.
type Network struct {
	// VPCID names an existing VPC (bring your own network); then every subnet names its id
	// too. Empty: the foundation stack creates the VPC and its subnets.
	VPCID   string  `yaml:"vpc_id,omitempty"`
	CIDR    string  `yaml:"cidr"`
	Subnets Subnets `yaml:"subnets"`
	// NATGateways is 1 (one shared NAT gateway) or one per availability zone (prod: an AZ
	// outage keeps the other zone's egress).
	NATGateways int `yaml:"nat_gateways"`
	// SecurityGroups maps a role (alb, a service, rds, redis, efs) to an existing security
	// group; a role left out gets the foundation's group with exactly seed §2.2's rules.
	SecurityGroups map[string]string `yaml:"security_groups,omitempty"`
	// BastionSecurityGroup is the bastion's group; when set, OpenVoice's hosts accept SSH
	// (22) from it and from nothing else. Empty: no SSH at all (SSM reaches the hosts).
	BastionSecurityGroup string `yaml:"bastion_security_group,omitempty"`
}

// Subnets are the VPC's tiers; each spans at least two availability zones.
type Subnets struct {
	Public   []Subnet `yaml:"public"`   // ALB, NAT gateways
	Private  []Subnet `yaml:"private"`  // ECS tasks and GPU instances
	Database []Subnet `yaml:"database"` // RDS
}

// Subnet is one subnet; CIDR and AZ document it and are checked against the VPC and region.
type Subnet struct {
	ID   string `yaml:"id,omitempty"` // an existing subnet; empty: the foundation creates it
	CIDR string `yaml:"cidr"`
	AZ   string `yaml:"az"`
}

// Deployment is how releases reach the environment.
type Deployment struct {
	Strategy         Strategy `yaml:"strategy"`
	Auto             bool     `yaml:"auto"`              // deploy every new release without a person
	ApprovalRequired bool     `yaml:"approval_required"` // a person approves each deploy
}

// Schedule keeps an environment running only in working hours; outside them services scale to zero.
type Schedule struct {
	TimeZone string   `yaml:"time_zone"` // IANA name, e.g. Asia/Tokyo
	Days     []string `yaml:"days"`      // mon … sun
	Start    string   `yaml:"start"`     // "HH:MM"
	Stop     string   `yaml:"stop"`      // "HH:MM"
}

// Logs are the CloudWatch Logs retention periods.
type Logs struct {
	AppRetentionDays   int `yaml:"app_retention_days"`
	AuditRetentionDays int `yaml:"audit_retention_days"`
}

// Stores are the managed services that replace the local postgres, redis and named volumes.
type Stores struct {
	Postgres Postgres `yaml:"postgres"`
	Redis    Redis    `yaml:"redis"`
	EFS      EFS      `yaml:"efs"`
}

// Postgres is the RDS PostgreSQL instance.
type Postgres struct {
	// Endpoint names an existing database (host:port); empty: the foundation's RDS instance.
	Endpoint            string `yaml:"endpoint,omitempty"`
	MultiAZ             bool   `yaml:"multi_az"`
	InstanceClass       string `yaml:"instance_class"`        // e.g. db.t4g.medium
	StorageGiB          int    `yaml:"storage_gib"`           // allocated gp3 storage
	EngineVersion       string `yaml:"engine_version"`        // PostgreSQL major version, e.g. "16"
	BackupRetentionDays int    `yaml:"backup_retention_days"` // point-in-time recovery window, 1–35
}

// Redis is the ElastiCache Redis cache.
type Redis struct {
	// Endpoint names an existing cache (host:port); empty: the foundation's replication group.
	Endpoint        string   `yaml:"endpoint,omitempty"`
	NodeType        string   `yaml:"node_type"` // e.g. cache.t4g.small
	Replicas        int      `yaml:"replicas"`  // read replicas beside the primary; ≥1 fails over
	VoiceProfileTTL Duration `yaml:"voice_profile_ttl"`
}

// EFS is the file system that backs the stack's named volumes.
type EFS struct {
	// FileSystemID names an existing file system, whose volumes then name their access
	// points; empty: the foundation creates both.
	FileSystemID string `yaml:"file_system_id,omitempty"`
	// Volumes maps a compose named volume to its access point.
	Volumes map[string]Volume `yaml:"volumes"`
}

// Volume is one EFS access point.
type Volume struct {
	AccessPointID string `yaml:"access_point_id,omitempty"`
}

// Service is how one compose service runs. All fields but GPU and Environment are for kind aws.
type Service struct {
	Placement    Placement `yaml:"placement"`
	InstanceType string    `yaml:"instance_type"` // ec2-gpu only
	CPU          int       `yaml:"cpu"`           // CPU units: 1024 = 1 vCPU
	Memory       int       `yaml:"memory"`        // MiB
	GPU          *GPU      `yaml:"gpu"`           // nil: needs no GPU
	// Min and Max bound the task count; for ec2-gpu they also bound the instances, one task each.
	Min          int               `yaml:"min"`
	Max          int               `yaml:"max"`
	Spot         bool              `yaml:"spot"`           // FARGATE_SPOT, or Spot instances for ec2-gpu
	OnDemandBase int               `yaml:"on_demand_base"` // tasks or instances kept on demand with spot
	Port         int               `yaml:"port"`
	Health       Health            `yaml:"health"`
	LoadBalancer *LoadBalancer     `yaml:"load_balancer"` // nil: reachable only inside the VPC
	Environment  map[string]string `yaml:"environment"`   // overrides of the stack's variables
	Secrets      map[string]string `yaml:"secrets"`       // variable → SSM parameter or Secrets Manager ARN
}

// GPU is what a service needs from its GPU.
type GPU struct {
	Count        int    `yaml:"count"`
	Model        string `yaml:"model"` // expected model, e.g. "NVIDIA T4"; checked against instance_type
	MinMemoryMiB int    `yaml:"min_memory_mib"`
	CUDA         string `yaml:"cuda"`  // e.g. "11.8"
	CuDNN        string `yaml:"cudnn"` // e.g. "8"
}

// Health is the service's HTTP health check.
type Health struct {
	Path        string   `yaml:"path"`
	GracePeriod Duration `yaml:"grace_period"` // how long a new task may fail it while starting
}

// LoadBalancer routes ALB listener paths to the service.
type LoadBalancer struct {
	PathPatterns []string `yaml:"path_patterns"`
}

// Duration is a time.Duration written in YAML as a Go duration string such as "24h".
type Duration struct{ time.Duration }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Load reads and strictly validates one environment file. Its name is the file name
// without .yaml.
func Load(path string) (*Environment, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	e := &Environment{
		Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)),
		File: path,
		dir:  dir,
	}
	lines, err := decode(path, data, e)
	if err != nil {
		return nil, err
	}
	if err := validate(path, lines, e); err != nil {
		return nil, err
	}
	return e, nil
}

// maxFileSize bounds an environment file. A real one is a few KiB; the bound keeps a
// mistaken or hostile file from costing the parser much memory.
const maxFileSize = 1 << 20

// readFile reads path, refusing more than maxFileSize bytes before any is parsed.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	defer f.Close()
	tooBig := func(size int64) error {
		return &FieldError{File: path, Reason: fmt.Sprintf("%.1f MiB is over the 1 MiB limit for an environment file", float64(size)/(1<<20))}
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > maxFileSize {
		return nil, tooBig(fi.Size())
	}
	// Read one byte past the limit: a file that grows, or is no regular file, is caught too.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read environment: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, tooBig(int64(len(data)))
	}
	return data, nil
}

// LoadNamed loads dir/name.yaml. An unknown name is an error wrapping ErrUnknownEnvironment
// that lists the names there are.
func LoadNamed(dir, name string) (*Environment, error) {
	names, err := Names(dir)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(names, name) {
		have := strings.Join(names, ", ")
		if have == "" {
			have = "none"
		}
		return nil, fmt.Errorf("%w %q: %s has %s", ErrUnknownEnvironment, name, dir, have)
	}
	return Load(filepath.Join(dir, name+".yaml"))
}

// Names lists the environments in dir, sorted: the *.yaml file names without the extension.
func Names(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	var names []string
	for _, de := range entries {
		if name, ok := strings.CutSuffix(de.Name(), ".yaml"); ok && !de.IsDir() {
			names = append(names, name)
		}
	}
	return names, nil // ReadDir sorts by file name
}

// AppSource returns the absolute path of a local environment's app source: the value of
// AppSourceEnv when lookupEnv finds it set and non-empty (relative to the working directory),
// else app_source relative to the environment file. lookupEnv is usually os.LookupEnv; nil
// means no override.
func (e *Environment) AppSource(lookupEnv func(string) (string, bool)) (string, error) {
	if e.Kind != KindLocal {
		return "", fmt.Errorf("environment %s: app source is only for kind local, this is kind %s", e.Name, e.Kind)
	}
	if lookupEnv != nil {
		if p, ok := lookupEnv(AppSourceEnv); ok && p != "" {
			return filepath.Abs(p)
		}
	}
	if filepath.IsAbs(e.AppSourcePath) {
		return filepath.Clean(e.AppSourcePath), nil
	}
	return filepath.Join(e.dir, e.AppSourcePath), nil
}
