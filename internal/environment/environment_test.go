package environment

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const shipped = "../../environments"

func TestShippedEnvironments(t *testing.T) {
	names, err := Names(shipped)
	require.NoError(t, err)
	require.Equal(t, []string{"dev", "local", "prod", "staging"}, names)

	envs := map[string]*Environment{}
	for _, name := range names {
		e, err := LoadNamed(shipped, name)
		require.NoError(t, err, name)
		assert.Equal(t, name, e.Name)
		envs[name] = e
	}

	local := envs["local"]
	assert.Equal(t, KindLocal, local.Kind)
	assert.Nil(t, local.AWS)
	require.NotNil(t, local.Services["openvoice"].GPU)
	assert.Equal(t, 8192, local.Services["openvoice"].GPU.MinMemoryMiB)

	// Protection is declared: staging and prod as shipped, never dev.
	assert.False(t, envs["dev"].Protected)
	assert.True(t, envs["staging"].Protected)
	assert.True(t, envs["prod"].Protected)
	for _, name := range []string{"dev", "staging", "prod"} {
		e := envs[name]
		require.Equal(t, KindAWS, e.Kind, name)
		require.NotNil(t, e.AWS, name)
		assert.Equal(t, "ap-northeast-1", e.AWS.Region, name)
		assert.Len(t, e.AWS.AccountID, 12, name)
		assert.Equal(t, 30, e.AWS.Logs.AppRetentionDays, name)
		assert.Equal(t, 365, e.AWS.Logs.AuditRetentionDays, name)
		assert.Equal(t, 24*time.Hour, e.AWS.Stores.Redis.VoiceProfileTTL.Duration, name)
		assert.True(t, e.AWS.Stores.Postgres.MultiAZ, name)
		assert.ElementsMatch(t, []string{"voice_profiles", "model_cache"}, keys(e.AWS.Stores.EFS.Volumes), name)

		fe, be, vv, ov := e.Services["frontend"], e.Services["backend"], e.Services["voicevox"], e.Services["openvoice"]
		assert.Equal(t, [4]any{PlacementFargate, 512, 1024, 55434}, [4]any{fe.Placement, fe.CPU, fe.Memory, fe.Port}, name)
		assert.Equal(t, "/", fe.Health.Path, name)
		assert.Equal(t, [4]any{PlacementFargate, 2048, 4096, 55433}, [4]any{be.Placement, be.CPU, be.Memory, be.Port}, name)
		assert.Equal(t, "/health", be.Health.Path, name)
		assert.Contains(t, be.Secrets, "DATABASE_URL", name)
		assert.Contains(t, be.Secrets, "D_ID_API_KEY", name)
		assert.Equal(t, [4]any{PlacementFargate, 2048, 4096, 50021}, [4]any{vv.Placement, vv.CPU, vv.Memory, vv.Port}, name)
		assert.Equal(t, "/version", vv.Health.Path, name)
		assert.Equal(t, [4]any{PlacementEC2GPU, 4096, 15360, 8001}, [4]any{ov.Placement, ov.CPU, ov.Memory, ov.Port}, name)
		assert.Equal(t, "g4dn.xlarge", ov.InstanceType, name)
		require.NotNil(t, ov.GPU, name)
		assert.Equal(t, GPU{Count: 1, Model: "NVIDIA T4", MinMemoryMiB: 8192, CUDA: "11.8", CuDNN: "8"}, *ov.GPU, name)
		assert.Equal(t, "/health", ov.Health.Path, name)
	}

	// staging and prod carry the seed's scaling; dev may be smaller.
	for _, name := range []string{"staging", "prod"} {
		s := envs[name].Services
		assert.Equal(t, [8]int{1, 10, 2, 20, 1, 3, 1, 5}, [8]int{
			s["frontend"].Min, s["frontend"].Max, s["backend"].Min, s["backend"].Max,
			s["voicevox"].Min, s["voicevox"].Max, s["openvoice"].Min, s["openvoice"].Max,
		}, name)
		assert.True(t, envs[name].AWS.Deployment.ApprovalRequired, name)
		assert.False(t, envs[name].AWS.Deployment.Auto, name)
		assert.Nil(t, envs[name].AWS.Schedule, name)
	}

	dev := envs["dev"].AWS
	assert.Equal(t, Deployment{Strategy: StrategyRolling, Auto: true}, dev.Deployment)
	require.NotNil(t, dev.Schedule)
	assert.Equal(t, "Asia/Tokyo", dev.Schedule.TimeZone)
	assert.True(t, envs["dev"].Services["backend"].Spot)

	assert.Equal(t, StrategyRolling, envs["staging"].AWS.Deployment.Strategy)
	assert.Equal(t, StrategyBlueGreen, envs["prod"].AWS.Deployment.Strategy)
	prodOV := envs["prod"].Services["openvoice"]
	assert.True(t, prodOV.Spot)
	assert.Equal(t, 1, prodOV.OnDemandBase)
}

func TestAppSource(t *testing.T) {
	e, err := Load(filepath.Join(shipped, "local.yaml"))
	require.NoError(t, err)
	abs, err := filepath.Abs(shipped)
	require.NoError(t, err)
	cwd, err := os.Getwd()
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"from the file", nil, filepath.Join(abs, "../../video-message-app")},
		{"empty variable is unset", map[string]string{AppSourceEnv: ""}, filepath.Join(abs, "../../video-message-app")},
		{"absolute override", map[string]string{AppSourceEnv: "/src/app"}, "/src/app"},
		{"relative override", map[string]string{AppSourceEnv: "app"}, filepath.Join(cwd, "app")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.AppSource(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	got, err := e.AppSource(nil)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(abs, "../../video-message-app"), got)

	dev, err := Load(filepath.Join(shipped, "dev.yaml"))
	require.NoError(t, err)
	_, err = dev.AppSource(nil)
	assert.Error(t, err)
}

func TestLoadNamedUnknown(t *testing.T) {
	_, err := LoadNamed(shipped, "qa")
	require.ErrorIs(t, err, ErrUnknownEnvironment)
	assert.Contains(t, err.Error(), `"qa"`)
	assert.Contains(t, err.Error(), "dev, local, prod, staging")

	_, err = LoadNamed(shipped, "../environments/dev")
	require.ErrorIs(t, err, ErrUnknownEnvironment)

	_, err = Names(filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// base is a small valid AWS environment; the cases below break it one edit at a time.
const base = `kind: aws
aws:
  account_id: "111111111111"
  region: ap-northeast-1
  cluster: vmctl-dev
  registry: 111111111111.dkr.ecr.ap-northeast-1.amazonaws.com
  network:
    vpc_id: vpc-01111111111111111
    cidr: 10.0.0.0/16
    subnets:
      public:
        - {id: subnet-01111111111110001, cidr: 10.0.1.0/24, az: ap-northeast-1a}
        - {id: subnet-01111111111110002, cidr: 10.0.2.0/24, az: ap-northeast-1c}
      private:
        - {id: subnet-01111111111110011, cidr: 10.0.11.0/24, az: ap-northeast-1a}
        - {id: subnet-01111111111110012, cidr: 10.0.12.0/24, az: ap-northeast-1c}
      database:
        - {id: subnet-01111111111110021, cidr: 10.0.21.0/24, az: ap-northeast-1a}
        - {id: subnet-01111111111110022, cidr: 10.0.22.0/24, az: ap-northeast-1c}
    security_groups:
      alb: sg-01111111111110001
      backend: sg-01111111111110003
      openvoice: sg-01111111111110005
  deployment:
    strategy: rolling
    auto: true
    approval_required: false
  schedule:
    time_zone: Asia/Tokyo
    days: [mon, fri]
    start: "08:00"
    stop: "20:00"
  logs:
    app_retention_days: 30
    audit_retention_days: 365
  stores:
    postgres:
      endpoint: db.example:5432
      multi_az: true
    redis:
      endpoint: cache.example:6379
      voice_profile_ttl: 24h
    efs:
      file_system_id: fs-01111111111111111
      volumes:
        voice_profiles: {access_point_id: fsap-01111111111110001}
services:
  backend:
    placement: fargate
    cpu: 2048
    memory: 4096
    min: 2
    max: 20
    spot: true
    on_demand_base: 2
    port: 55433
    health: {path: /health, grace_period: 30s}
    load_balancer: {path_patterns: ["/api/*"]}
    environment:
      LOG_LEVEL: info
    secrets:
      DATABASE_URL: arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:vmctl/dev/database-url
      D_ID_API_KEY: arn:aws:ssm:ap-northeast-1:111111111111:parameter/vmctl/dev/d-id-api-key
  openvoice:
    placement: ec2-gpu
    instance_type: g4dn.xlarge
    cpu: 4096
    memory: 16384
    gpu: {count: 1, model: NVIDIA T4, min_memory_mib: 8192, cuda: "11.8", cudnn: "8"}
    min: 1
    max: 5
    port: 8001
    health: {path: /health}
`

const localBase = `kind: local
app_source: ../app
services:
  openvoice:
    gpu: {count: 1, min_memory_mib: 8192}
`

// write puts content in dir/dev.yaml and returns the path.
func write(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dev.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// edit replaces old with new in doc, failing when old is not there.
func edit(t *testing.T, doc, old, new string) string {
	t.Helper()
	require.Contains(t, doc, old)
	return strings.Replace(doc, old, new, 1)
}

// lineOf is the 1-based line of the first line of doc containing s.
func lineOf(t *testing.T, doc, s string) int {
	t.Helper()
	i := strings.Index(doc, s)
	require.GreaterOrEqual(t, i, 0, "no %q in the document", s)
	return strings.Count(doc[:i], "\n") + 1
}

func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	require.Error(t, err)
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var fes []*FieldError
		for _, e := range joined.Unwrap() {
			var fe *FieldError
			require.ErrorAs(t, e, &fe)
			fes = append(fes, fe)
		}
		return fes
	}
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	return []*FieldError{fe}
}

func TestValidFixturesLoad(t *testing.T) {
	for _, doc := range []string{base, localBase} {
		_, err := Load(write(t, doc))
		require.NoError(t, err)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	doc := edit(t, base, "cpu: 2048", "cpu: 3000")
	path := write(t, doc)
	_, err := Load(path)
	require.EqualError(t, err, path+":50: services.backend.cpu: 3000 is not a Fargate CPU size (256, 512, 1024, 2048, 4096, 8192, 16384)")
	require.Equal(t, 50, lineOf(t, doc, "cpu: 3000"))
}

func TestInvalid(t *testing.T) {
	type change struct{ old, new string }
	for _, tc := range []struct {
		name    string
		doc     string // base when empty
		changes []change
		field   string
		reason  string // a substring of the reason
		at      string // the expected line is the first line containing this
	}{
		// Malformed documents.
		{name: "syntax", changes: []change{{"  region: ap-northeast-1\n", "  region: [ap-northeast-1\n"}}, reason: "did not find expected", at: ""},
		{name: "empty file", doc: "# nothing\n", reason: "empty file"},
		{name: "two documents", doc: localBase + "---\nkind: aws\n", reason: "second YAML document", at: "---"},
		{name: "root not a mapping", doc: "- kind: aws\n", reason: "expected a mapping, got a list", at: "- kind"},

		// Unknown keys and wrong types, with dotted path and line.
		{name: "unknown top-level key", changes: []change{{"kind: aws\n", "kind: aws\nname: dev\n"}}, field: "name", reason: "unknown key; known keys: app_source, aws, description, kind, protected, services", at: "name: dev"},
		{name: "unknown nested key", changes: []change{{"    port: 8001\n", "    port: 8001\n    replicas: 3\n"}}, field: "services.openvoice.replicas", reason: "unknown key", at: "replicas: 3"},
		{name: "unknown key in a list item", changes: []change{{"az: ap-northeast-1c}\n      database", "az: ap-northeast-1c, zone: x}\n      database"}}, field: "aws.network.subnets.private[1].zone", reason: "unknown key", at: "zone: x"},
		{name: "unknown key in flow mapping", changes: []change{{"cudnn: \"8\"}", "cudnn: \"8\", vram: 1}"}}, field: "services.openvoice.gpu.vram", reason: "unknown key", at: "vram: 1"},
		{name: "duplicate key", changes: []change{{"    min: 1\n", "    min: 1\n    min: 2\n"}}, field: "services.openvoice.min", reason: "duplicate key", at: "min: 2\n    max: 5"},
		{name: "quoted integer", changes: []change{{"cpu: 2048", `cpu: "2048"`}}, field: "services.backend.cpu", reason: `expected an integer, got the string "2048"`, at: `cpu: "2048"`},
		{name: "string for integer", changes: []change{{"max: 20", "max: lots"}}, field: "services.backend.max", reason: "expected an integer", at: "max: lots"},
		{name: "float for integer", changes: []change{{"max: 20", "max: 2.5"}}, field: "services.backend.max", reason: "expected an integer, got the number 2.5", at: "max: 2.5"},
		{name: "yes for bool", changes: []change{{"auto: true", "auto: yes"}}, field: "aws.deployment.auto", reason: "expected true or false", at: "auto: yes"},
		{name: "scalar for mapping", changes: []change{{"health: {path: /health}\n", "health: /health\n"}}, field: "services.openvoice.health", reason: "expected a mapping", at: "health: /health\n"},
		{name: "mapping for string", changes: []change{{"cluster: vmctl-dev", "cluster: {name: x}"}}, field: "aws.cluster", reason: "expected a string, got a mapping", at: "cluster:"},
		{name: "scalar for list", changes: []change{{"days: [mon, fri]", "days: mon"}}, field: "aws.schedule.days", reason: "expected a list", at: "days: mon"},
		{name: "list for map", changes: []change{{"    environment:\n      LOG_LEVEL: info\n", "    environment: [LOG_LEVEL=info]\n"}}, field: "services.backend.environment", reason: "expected a mapping", at: "environment: ["},
		{name: "bad duration", changes: []change{{"voice_profile_ttl: 24h", "voice_profile_ttl: 1 day"}}, field: "aws.stores.redis.voice_profile_ttl", reason: "expected a duration", at: "voice_profile_ttl"},

		// Missing required fields: located at the enclosing key.
		{name: "missing kind", changes: []change{{"kind: aws\n", ""}}, field: "kind", reason: "is required (local or aws)", at: "aws:"},
		{name: "missing cpu", changes: []change{{"    cpu: 2048\n", ""}}, field: "services.backend.cpu", reason: "is required", at: "  backend:\n"},
		{name: "null cpu", changes: []change{{"    cpu: 2048\n", "    cpu:\n"}}, field: "services.backend.cpu", reason: "is required", at: "  backend:\n"},
		{name: "missing health path", changes: []change{{"health: {path: /health}\n", "health: {}\n"}}, field: "services.openvoice.health.path", reason: "is required", at: "health: {}"},
		{name: "misspelt section key", changes: []change{{"kind: aws\naws:\n", "kind: aws\nx_aws:\n"}}, field: "x_aws", reason: "unknown key", at: "x_aws"},
		{name: "aws section missing", doc: "kind: aws\nservices: {}\n", field: "aws", reason: "is required", at: "kind"},
		{name: "no services", doc: "kind: aws\nservices: {}\n", field: "services", reason: "at least one service", at: "services"},
		{name: "missing gpu for ec2-gpu", changes: []change{{"    gpu: {count: 1, model: NVIDIA T4, min_memory_mib: 8192, cuda: \"11.8\", cudnn: \"8\"}\n", ""}}, field: "services.openvoice.gpu", reason: "is required", at: "  openvoice:\n"},
		{name: "missing gpu min memory", changes: []change{{"min_memory_mib: 8192, ", ""}}, field: "services.openvoice.gpu.min_memory_mib", reason: "is required", at: "gpu: {"},
		{name: "subnet id without vpc", changes: []change{{"    vpc_id: vpc-01111111111111111\n", ""}}, field: "aws.network.subnets.database[0].id", reason: "needs network.vpc_id", at: "subnet-01111111111110021"},
		{name: "access point without file system", changes: []change{{"      file_system_id: fs-01111111111111111\n", ""}}, field: "aws.stores.efs.volumes.voice_profiles.access_point_id", reason: "needs efs.file_system_id", at: "voice_profiles:"},
		{name: "budget of zero", changes: []change{{"  logs:\n", "  budget: {monthly_usd: 0, anomaly_percent: 20}\n  logs:\n"}}, field: "aws.budget.monthly_usd", reason: "not a budget", at: "budget:"},
		{name: "nat gateways per zone", changes: []change{{"    vpc_id: vpc-01111111111111111\n", "    vpc_id: vpc-01111111111111111\n    nat_gateways: 3\n"}}, field: "aws.network.nat_gateways", reason: "use 1 (one shared gateway) or 2", at: "nat_gateways"},
		{name: "alarm target", changes: []change{{"  logs:\n", "  alarms: {notify: [ops]}\n  logs:\n"}}, field: "aws.alarms.notify[0]", reason: "not an e-mail address", at: "alarms:"},
		{name: "backups off", changes: []change{{"      endpoint: db.example:5432\n", "      endpoint: db.example:5432\n      backup_retention_days: 0\n"}}, field: "aws.stores.postgres.backup_retention_days", reason: "outside 1–35", at: "backup_retention_days"},
		{name: "domain with a scheme", changes: []change{{"  cluster: vmctl-dev\n", "  cluster: vmctl-dev\n  domain: https://app.example.com\n"}}, field: "aws.domain", reason: "is not a domain name", at: "domain: https"},
		{name: "protected and auto", changes: []change{{"kind: aws\n", "kind: aws\nprotected: true\n"}}, field: "aws.deployment.auto", reason: "cannot be true in a protected environment", at: "auto: true"},
		{name: "protected local", doc: localBase, changes: []change{{"kind: local\n", "kind: local\nprotected: true\n"}}, field: "protected", reason: "is only for kind aws", at: "protected: true"},
		{name: "missing log retention", changes: []change{{"    audit_retention_days: 365\n", ""}}, field: "aws.logs.audit_retention_days", reason: "is required", at: "  logs:"},
		{name: "local without app_source", doc: "kind: local\n", field: "app_source", reason: "is required", at: "kind"},

		// Invalid values.
		{name: "kind", changes: []change{{"kind: aws", "kind: gcp"}}, field: "kind", reason: `"gcp" is not a kind (local, aws)`, at: "kind:"},
		{name: "placement", changes: []change{{"placement: fargate", "placement: lambda"}}, field: "services.backend.placement", reason: `"lambda" is not a placement (fargate, ec2-gpu)`, at: "placement: lambda"},
		{name: "strategy", changes: []change{{"strategy: rolling", "strategy: canary"}}, field: "aws.deployment.strategy", reason: `"canary" is not a strategy (rolling, blue-green)`, at: "strategy:"},
		{name: "min greater than max", changes: []change{{"min: 2", "min: 21"}}, field: "services.backend.min", reason: "21 is greater than max 20", at: "min: 21"},
		{name: "negative min", changes: []change{{"min: 2", "min: -1"}}, field: "services.backend.min", reason: "-1 is negative", at: "min: -1"},
		{name: "zero max", changes: []change{{"max: 20", "max: 0"}}, field: "services.backend.max", reason: "0 is less than 1", at: "max: 0"},
		{name: "fargate cpu", changes: []change{{"cpu: 2048", "cpu: 3000"}}, field: "services.backend.cpu", reason: "3000 is not a Fargate CPU size (256, 512, 1024, 2048, 4096, 8192, 16384)", at: "cpu: 3000"},
		{name: "fargate memory", changes: []change{{"memory: 4096", "memory: 2048"}}, field: "services.backend.memory", reason: "2048 MiB is not a Fargate memory size for cpu 2048 (4096–16384 in steps of 1024)", at: "memory: 2048"},
		{name: "fargate memory off step", changes: []change{{"memory: 4096", "memory: 4100"}}, field: "services.backend.memory", reason: "not a Fargate memory size", at: "memory: 4100"},
		{name: "gpu on fargate", changes: []change{{"    spot: true\n", "    spot: true\n    gpu: {count: 1, min_memory_mib: 1}\n"}}, field: "services.backend.gpu", reason: "Fargate has no GPUs", at: "gpu: {count: 1, min"},
		{name: "instance type on fargate", changes: []change{{"    spot: true\n", "    spot: true\n    instance_type: g4dn.xlarge\n"}}, field: "services.backend.instance_type", reason: "only for placement ec2-gpu", at: "instance_type: g4dn.xlarge\n    on_demand_base"},
		{name: "unknown instance type", changes: []change{{"instance_type: g4dn.xlarge", "instance_type: t3.large"}}, field: "services.openvoice.instance_type", reason: `"t3.large" is not a known GPU instance type`, at: "t3.large"},
		{name: "cpu beyond instance", changes: []change{{"cpu: 4096", "cpu: 8192"}}, field: "services.openvoice.cpu", reason: "8192 exceeds the 4 vCPUs (4096 units) of g4dn.xlarge", at: "cpu: 8192"},
		{name: "memory beyond instance", changes: []change{{"memory: 16384", "memory: 32768"}}, field: "services.openvoice.memory", reason: "exceeds the 16384 MiB of g4dn.xlarge", at: "memory: 32768"},
		{name: "gpu count beyond instance", changes: []change{{"count: 1", "count: 2"}}, field: "services.openvoice.gpu.count", reason: "2 exceeds the 1 GPUs of g4dn.xlarge", at: "count: 2"},
		{name: "gpu memory beyond T4", changes: []change{{"min_memory_mib: 8192", "min_memory_mib: 20000"}}, field: "services.openvoice.gpu.min_memory_mib", reason: "20000 MiB exceeds the 15360 MiB of the NVIDIA T4", at: "min_memory_mib: 20000"},
		{name: "gpu model", changes: []change{{"model: NVIDIA T4", "model: NVIDIA A10G"}}, field: "services.openvoice.gpu.model", reason: "is not the GPU of g4dn.xlarge (NVIDIA T4)", at: "model: NVIDIA A10G"},
		{name: "cuda version", changes: []change{{`cuda: "11.8"`, "cuda: latest"}}, field: "services.openvoice.gpu.cuda", reason: `"latest" is not a version`, at: "cuda: latest"},
		{name: "account id", changes: []change{{`account_id: "111111111111"`, `account_id: "1111"`}}, field: "aws.account_id", reason: `"1111" is not a 12-digit AWS account id`, at: "account_id"},
		{name: "region", changes: []change{{"region: ap-northeast-1", "region: tokyo"}}, field: "aws.region", reason: "is not an AWS region", at: "region: tokyo"},
		{name: "registry with scheme", changes: []change{{"registry: 111111111111", "registry: https://111111111111"}}, field: "aws.registry", reason: "without scheme or path", at: "registry:"},
		{name: "vpc id", changes: []change{{"vpc_id: vpc-01111111111111111", "vpc_id: my-vpc"}}, field: "aws.network.vpc_id", reason: "is not a VPC id", at: "vpc_id"},
		{name: "subnet outside vpc", changes: []change{{"cidr: 10.0.21.0/24", "cidr: 10.1.21.0/24"}}, field: "aws.network.subnets.database[0].cidr", reason: "10.1.21.0/24 is not inside the VPC's 10.0.0.0/16", at: "10.1.21.0/24"},
		{name: "subnet az outside region", changes: []change{{"cidr: 10.0.1.0/24, az: ap-northeast-1a", "cidr: 10.0.1.0/24, az: us-east-1a"}}, field: "aws.network.subnets.public[0].az", reason: `"us-east-1a" is not an availability zone of ap-northeast-1`, at: "us-east-1a"},
		{name: "one availability zone", changes: []change{{"cidr: 10.0.12.0/24, az: ap-northeast-1c", "cidr: 10.0.12.0/24, az: ap-northeast-1a"}}, field: "aws.network.subnets.private", reason: "at least 2 availability zones, has 1", at: "private:"},
		{name: "security group role", changes: []change{{"      alb: sg-01111111111110001\n", "      alb: sg-01111111111110001\n      nat: sg-01111111111110009\n"}}, field: "aws.network.security_groups.nat", reason: "is not a service or one of alb, rds, redis, efs", at: "nat:"},
		{name: "security group id", changes: []change{{"alb: sg-01111111111110001", "alb: default"}}, field: "aws.network.security_groups.alb", reason: "is not a security group id", at: "alb: default"},
		{name: "auto with approval", changes: []change{{"approval_required: false", "approval_required: true"}}, field: "aws.deployment.auto", reason: "cannot be true with approval_required", at: "auto: true"},
		{name: "time zone", changes: []change{{"time_zone: Asia/Tokyo", "time_zone: Mars/Olympus"}}, field: "aws.schedule.time_zone", reason: "is not an IANA time zone", at: "Mars"},
		{name: "weekday", changes: []change{{"days: [mon, fri]", "days: [mon, funday]"}}, field: "aws.schedule.days[1]", reason: `"funday" is not a day`, at: "funday"},
		{name: "stop equals start", changes: []change{{`stop: "20:00"`, `stop: "08:00"`}}, field: "aws.schedule.stop", reason: "equals start", at: `stop: "08:00"`},
		{name: "time of day", changes: []change{{`stop: "20:00"`, `stop: "8pm"`}}, field: "aws.schedule.stop", reason: "is not a time of day HH:MM", at: "8pm"},
		{name: "log retention", changes: []change{{"app_retention_days: 30", "app_retention_days: 31"}}, field: "aws.logs.app_retention_days", reason: "31 is not a CloudWatch Logs retention period", at: "app_retention_days"},
		{name: "endpoint", changes: []change{{"endpoint: db.example:5432", "endpoint: db.example"}}, field: "aws.stores.postgres.endpoint", reason: `"db.example" is not host:port`, at: "db.example"},
		{name: "zero ttl", changes: []change{{"voice_profile_ttl: 24h", "voice_profile_ttl: 0s"}}, field: "aws.stores.redis.voice_profile_ttl", reason: "0s is not a positive duration", at: "voice_profile_ttl"},
		{name: "file system id", changes: []change{{"file_system_id: fs-01111111111111111", "file_system_id: efs-1"}}, field: "aws.stores.efs.file_system_id", reason: "is not an EFS file system id", at: "efs-1"},
		{name: "access point id", changes: []change{{"access_point_id: fsap-01111111111110001", "access_point_id: fsap-x"}}, field: "aws.stores.efs.volumes.voice_profiles.access_point_id", reason: "is not an EFS access point id", at: "fsap-x"},
		{name: "port", changes: []change{{"port: 55433", "port: 70000"}}, field: "services.backend.port", reason: "70000 is not a TCP port", at: "port: 70000"},
		{name: "health path", changes: []change{{"path: /health, grace", "path: health, grace"}}, field: "services.backend.health.path", reason: `"health" does not start with /`, at: "path: health, grace"},
		{name: "negative grace period", changes: []change{{"grace_period: 30s", "grace_period: -30s"}}, field: "services.backend.health.grace_period", reason: "-30s is negative", at: "grace_period"},
		{name: "path pattern", changes: []change{{`["/api/*"]`, `["api/*"]`}}, field: "services.backend.load_balancer.path_patterns[0]", reason: "does not start with /", at: "api/*"},
		{name: "no path patterns", changes: []change{{`{path_patterns: ["/api/*"]}`, `{path_patterns: []}`}}, field: "services.backend.load_balancer.path_patterns", reason: "at least one ALB path pattern", at: "path_patterns: []"},
		{name: "on_demand_base without spot", changes: []change{{"    spot: true\n", ""}}, field: "services.backend.on_demand_base", reason: "only for spot: true", at: "on_demand_base"},
		{name: "on_demand_base above max", changes: []change{{"on_demand_base: 2", "on_demand_base: 21"}}, field: "services.backend.on_demand_base", reason: "21 is not between 0 and max 20", at: "on_demand_base"},
		{name: "secret value", changes: []change{{"arn:aws:ssm:ap-northeast-1:111111111111:parameter/vmctl/dev/d-id-api-key", "sk-live-1234"}}, field: "services.backend.secrets.D_ID_API_KEY", reason: "never values", at: "sk-live-1234"},
		{name: "secret from another service", changes: []change{{"arn:aws:ssm:", "arn:aws:s3:"}}, field: "services.backend.secrets.D_ID_API_KEY", reason: "is not an SSM parameter", at: "arn:aws:s3:"},
		{name: "secret account", changes: []change{{"arn:aws:secretsmanager:ap-northeast-1:111111111111:", "arn:aws:secretsmanager:ap-northeast-1:1:"}}, field: "services.backend.secrets.DATABASE_URL", reason: "is not an SSM parameter", at: "DATABASE_URL"},
		{name: "secret also plain", changes: []change{{"LOG_LEVEL: info", "DATABASE_URL: postgres://x"}}, field: "services.backend.secrets.DATABASE_URL", reason: "also set in environment", at: "DATABASE_URL: arn"},
		{name: "variable name", changes: []change{{"LOG_LEVEL: info", "LOG-LEVEL: info"}}, field: "services.backend.environment.LOG-LEVEL", reason: "is not a variable name", at: "LOG-LEVEL"},
		{name: "app_source on aws", changes: []change{{"kind: aws\n", "kind: aws\napp_source: ../app\n"}}, field: "app_source", reason: "is only for kind local", at: "app_source"},
		{name: "aws on local", doc: localBase + "aws: {region: ap-northeast-1}\n", field: "aws", reason: "is only for kind aws", at: "aws:"},
		{name: "placement on local", doc: edit(t, localBase, "    gpu:", "    placement: fargate\n    gpu:"), field: "services.openvoice.placement", reason: "is only for kind aws", at: "placement"},
		{name: "gpu count on local", doc: edit(t, localBase, "count: 1", "count: 0"), field: "services.openvoice.gpu.count", reason: "0 is less than 1", at: "count: 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if doc == "" {
				doc = base
			}
			for _, c := range tc.changes {
				doc = edit(t, doc, c.old, c.new)
			}
			path := write(t, doc)
			_, err := Load(path)
			fes := fieldErrors(t, err)
			for _, fe := range fes {
				assert.NotContains(t, fe.Error(), "\n", "each error is one line")
				assert.Equal(t, path, fe.File)
			}
			for _, fe := range fes {
				if fe.Field == tc.field && strings.Contains(fe.Reason, tc.reason) {
					if tc.at != "" {
						assert.Equal(t, lineOf(t, doc, tc.at), fe.Line, "line of %s", fe)
					}
					return
				}
			}
			t.Fatalf("no error for field %q with reason %q in:\n%v", tc.field, tc.reason, err)
		})
	}
}

func TestSeveralErrorsAreJoinedInLineOrder(t *testing.T) {
	doc := edit(t, edit(t, base, "max: 5", "max: 0"), `account_id: "111111111111"`, `account_id: "1"`)
	_, err := Load(write(t, doc))
	fes := fieldErrors(t, err)
	require.Len(t, fes, 2)
	assert.Equal(t, "aws.account_id", fes[0].Field)
	assert.Equal(t, "services.openvoice.max", fes[1].Field)
	assert.Len(t, strings.Split(err.Error(), "\n"), 2)
	var fe *FieldError
	assert.True(t, errors.As(err, &fe))
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestDomainLoads(t *testing.T) {
	e, err := Load(write(t, edit(t, base, "  cluster: vmctl-dev\n", "  cluster: vmctl-dev\n  domain: app.vmapp.example.com\n")))
	require.NoError(t, err)
	assert.Equal(t, "app.vmapp.example.com", e.AWS.Domain)
}
