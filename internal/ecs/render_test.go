package ecs_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/release"
	"github.com/vmctl/vmctl/internal/stack"
)

// The prod plan carries every number of the seed (§1.1, §2.2, §4.1, §5.3, §7.2).
func TestProdPlanHasTheSeed(t *testing.T) {
	plan, err := ecs.Render(loadStack(t, stackFile), liveEnv(t), fakeRelease())
	require.NoError(t, err)
	assert.Equal(t, []string{"openvoice", "voicevox", "backend", "frontend"}, names(plan))
	assert.Equal(t, [][]string{{"openvoice", "voicevox"}, {"backend"}, {"frontend"}}, plan.Order)
	assert.Equal(t, ecs.LogGroup{Name: "/vmctl/prod/app", RetentionDays: 30}, plan.LogGroup)
	assert.False(t, plan.Unpinned)

	want := map[string]struct {
		cpu, memory, min, max, port int
		path, sg, launch, gpu       string
		public                      bool
	}{
		"frontend":  {512, 1024, 1, 10, 55434, "/", "sg-03333333333330002", "FARGATE", "", true},
		"backend":   {2048, 4096, 2, 20, 55433, "/health", "sg-03333333333330003", "FARGATE", "", true},
		"voicevox":  {2048, 4096, 1, 3, 50021, "/version", "sg-03333333333330004", "FARGATE", "", false},
		"openvoice": {4096, 15360, 1, 5, 8001, "/health", "sg-03333333333330005", "EC2", "1", false},
	}
	for _, s := range plan.Services {
		w := want[s.Name]
		td, main := s.TaskDefinition, s.TaskDefinition.ContainerDefinitions[0]
		assert.Equal(t, [2]string{strconv.Itoa(w.cpu), strconv.Itoa(w.memory)}, [2]string{*td.Cpu, *td.Memory}, s.Name)
		assert.Equal(t, ecstypes.NetworkModeAwsvpc, td.NetworkMode, s.Name)
		assert.Equal(t, w.launch, string(td.RequiresCompatibilities[0]), s.Name)
		assert.Equal(t, [2]int32{int32(w.min), int32(w.max)}, [2]int32{*s.Scaling.Target.MinCapacity, *s.Scaling.Target.MaxCapacity}, s.Name)
		assert.Equal(t, int32(w.min), *s.Service.DesiredCount, s.Name)
		assert.Equal(t, int32(w.port), *main.PortMappings[0].ContainerPort, s.Name)
		assert.Equal(t, []string{w.sg}, s.Service.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups, s.Name)
		assert.Equal(t, []string{"subnet-03333333333330011", "subnet-03333333333330012"}, s.Service.NetworkConfiguration.AwsvpcConfiguration.Subnets, s.Name)
		assert.Equal(t, ecstypes.DeploymentStrategyBlueGreen, s.Service.DeploymentConfiguration.Strategy, "seed §5.3: prod is blue/green")
		assert.True(t, s.Service.DeploymentConfiguration.DeploymentCircuitBreaker.Rollback, s.Name)
		assert.Contains(t, *main.Image, "@"+fakeDigest(s.Name), s.Name)
		assert.Equal(t, "/vmctl/prod/app", main.LogConfiguration.Options["awslogs-group"], s.Name)
		if w.gpu != "" {
			require.Len(t, main.ResourceRequirements, 1)
			assert.Equal(t, w.gpu, *main.ResourceRequirements[0].Value)
			require.NotNil(t, s.Hosts)
			assert.Equal(t, ecs.Hosts{CapacityProvider: "vmctl-prod-gpu", AutoScalingGroup: "vmctl-prod-gpu", InstanceType: "g4dn.xlarge", GPU: "1 × NVIDIA T4", Min: 1, Max: 5, Spot: true, OnDemandBase: 1}, *s.Hosts)
			assert.Equal(t, int32(300), *s.Service.HealthCheckGracePeriodSeconds, "grace_period 5m")
		} else {
			assert.Empty(t, main.ResourceRequirements, s.Name)
		}
		if w.public {
			require.NotNil(t, s.LoadBalancer, s.Name)
			assert.Equal(t, w.path, s.LoadBalancer.HealthPath)
			assert.Equal(t, w.path, *s.LoadBalancer.TargetGroupSettings.HealthCheckPath)
			assert.Equal(t, int32(w.port), *s.Service.LoadBalancers[0].ContainerPort)
		} else {
			assert.Nil(t, s.LoadBalancer, s.Name)
		}
	}
	assert.Equal(t, []ecs.Managed{
		{Service: "postgres", By: "RDS PostgreSQL", Endpoint: "vmctl-prod.c0example.ap-northeast-1.rds.amazonaws.com:5432", Detail: "Multi-AZ"},
		{Service: "redis", By: "ElastiCache Redis", Endpoint: "vmctl-prod.example.ng.0001.apne1.cache.amazonaws.com:6379", Detail: "voice-profile TTL 24h"},
	}, plan.Managed)
	require.Len(t, plan.Repositories, 4)
	for _, r := range plan.Repositories {
		assert.True(t, r.Settings.ImageScanningConfiguration.ScanOnPush, r.Name)
		assert.Equal(t, "IMMUTABLE", string(r.Settings.ImageTagMutability), r.Name)
		assert.Equal(t, "KMS", string(r.Settings.EncryptionConfiguration.EncryptionType), r.Name)
		assert.Contains(t, *r.Lifecycle.LifecyclePolicyText, `"tagStatus":"untagged"`, r.Name)
	}
}

func names(p *ecs.Plan) []string {
	var out []string
	for _, s := range p.Services {
		out = append(out, s.Name)
	}
	return out
}

// fixture renders a compose file (the services key and below) against prod's account, with
// the given services placed.
type fixture struct {
	compose  string
	services map[string]environment.Service
	edit     func(*environment.Environment)
	rel      release.Release
	// shell is the operator's environment the stack is interpolated with; files are written
	// next to the compose file (a .env, an env_file).
	shell map[string]string
	files map[string]string
}

func (fx fixture) render(t *testing.T) (*ecs.Plan, error) {
	t.Helper()
	st := fx.stack(t)
	env := liveEnv(t)
	env.Services = fx.services
	for name := range fx.services {
		env.AWS.Network.SecurityGroups[name] = "sg-0aaaaaaaaaaaaaaaa"
	}
	if fx.edit != nil {
		fx.edit(env)
	}
	rel := fx.rel
	if rel.Images == nil {
		rel = release.Release{ID: "r1", Images: map[string]release.Image{"app": {Digest: fakeDigest("app")}, "side": {Digest: fakeDigest("side")}}}
	}
	return ecs.Render(st, env, rel)
}

// stack loads the fixture's compose file, interpolated with its shell.
func (fx fixture) stack(t *testing.T) *stack.Stack {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	require.NoError(t, os.WriteFile(file, []byte("name: fx\n"+fx.compose), 0o644))
	for name, content := range fx.files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{file}, WorkDir: dir, Env: fx.shell})
	require.NoError(t, err)
	return st
}

func fargate(port int) environment.Service {
	return environment.Service{Placement: environment.PlacementFargate, CPU: 256, Memory: 512, Min: 1, Max: 2, Port: port, Health: environment.Health{Path: "/"}}
}

func gpuHost(port, gpus int) environment.Service {
	return environment.Service{
		Placement: environment.PlacementEC2GPU, InstanceType: "g4dn.xlarge", CPU: 4096, Memory: 16384,
		GPU: &environment.GPU{Count: gpus, Model: "NVIDIA T4", MinMemoryMiB: 8192}, Min: 1, Max: 2, Port: port,
		Health: environment.Health{Path: "/health", GracePeriod: environment.Duration{Duration: 2 * time.Minute}},
	}
}

func app(s environment.Service) map[string]environment.Service {
	return map[string]environment.Service{"app": s}
}

func only(t *testing.T, p *ecs.Plan, name string) ecs.Service {
	t.Helper()
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s in the plan", name)
	return ecs.Service{}
}

func container(s ecs.Service, name string) ecstypes.ContainerDefinition {
	for _, c := range s.TaskDefinition.ContainerDefinitions {
		if *c.Name == name {
			return c
		}
	}
	return ecstypes.ContainerDefinition{}
}

func envMap(c ecstypes.ContainerDefinition) map[string]string {
	m := map[string]string{}
	for _, kv := range c.Environment {
		m[*kv.Name] = *kv.Value
	}
	return m
}

func hasNote(p *ecs.Plan, service, key string) bool {
	for _, n := range p.Notes {
		if n.Service == service && n.Key == key {
			return true
		}
	}
	return false
}

func TestTranslationRules(t *testing.T) {
	tests := []struct {
		name  string
		fx    fixture
		check func(t *testing.T, p *ecs.Plan)
	}{
		{
			name: "image pinned by the release's digest",
			fx:   fixture{compose: "services:\n  app:\n    image: fx-app:local\n    ports: [\"8080:8080\"]\n", services: app(fargate(8080))},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				assert.Equal(t, "333333333333.dkr.ecr.ap-northeast-1.amazonaws.com/fx/app@"+fakeDigest("app"), s.Image)
				assert.True(t, s.Pinned)
				assert.False(t, p.Unpinned)
				assert.Equal(t, "fx/app", p.Repositories[0].Name)
			},
		},
		{
			name: "without a digest the image is a tag and the plan says so",
			fx: fixture{
				compose: "services:\n  app:\n    image: fx-app:1.2\n    ports: [\"8080:8080\"]\n", services: app(fargate(8080)),
				rel: release.Release{Images: map[string]release.Image{"app": {Repository: "team/app"}}},
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				assert.Equal(t, "333333333333.dkr.ecr.ap-northeast-1.amazonaws.com/team/app:1.2", s.Image)
				assert.False(t, s.Pinned)
				assert.True(t, p.Unpinned)
				assert.True(t, hasNote(p, "app", "image"))
			},
		},
		{
			name: "command, entrypoint, working dir and user",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    command: [serve, --port, \"8080\"]\n    entrypoint: /bin/tini --\n    working_dir: /srv\n    user: \"10001\"\n    ports: [\"8080\"]\n",
				services: app(fargate(8080)),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				c := container(only(t, p, "app"), "app")
				assert.Equal(t, []string{"serve", "--port", "8080"}, c.Command)
				assert.Equal(t, []string{"/bin/tini", "--"}, c.EntryPoint)
				assert.Equal(t, "/srv", *c.WorkingDirectory)
				assert.Equal(t, "10001", *c.User)
			},
		},
		{
			name: "ports: container ports, host port local only, expose, HTTP on the environment's port",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    ports: [\"127.0.0.1:9000:8080\", \"5353:5353/udp\"]\n    expose: [\"9090\"]\n",
				services: app(fargate(8080)),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				pms := container(s, "app").PortMappings
				require.Len(t, pms, 3)
				assert.Equal(t, [4]any{int32(5353), int32(5353), ecstypes.TransportProtocolUdp, "app-5353-udp"}, [4]any{*pms[0].ContainerPort, *pms[0].HostPort, pms[0].Protocol, *pms[0].Name})
				assert.Equal(t, [3]any{int32(8080), int32(8080), ecstypes.ApplicationProtocolHttp}, [3]any{*pms[1].ContainerPort, *pms[1].HostPort, pms[1].AppProtocol})
				assert.Equal(t, int32(9090), *pms[2].ContainerPort)
				assert.True(t, hasNote(p, "app", "ports"), "host port 9000 is local only")
				// Service Connect serves the TCP ports under the compose name.
				sc := s.Service.ServiceConnectConfiguration
				require.Len(t, sc.Services, 2)
				assert.Equal(t, "app", *sc.Services[0].ClientAliases[0].DnsName)
				assert.Equal(t, "vmctl-prod", *sc.Namespace)
			},
		},
		{
			name: "a service without ports listens on the environment's port",
			fx:   fixture{compose: "services:\n  app:\n    image: x\n", services: app(fargate(8000))},
			check: func(t *testing.T, p *ecs.Plan) {
				assert.Equal(t, int32(8000), *container(only(t, p, "app"), "app").PortMappings[0].ContainerPort)
			},
		},
		{
			name: "environment: compose values, the file's overrides, secrets by ARN, managed stores' endpoints",
			fx: fixture{
				compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    environment:\n      LOG_LEVEL: debug\n      REGION: local\n      CACHE: redis://redis:6379/0\n      DB_HOST: postgres\n      UNSET:\n      DATABASE_URL: postgresql://u:local-pass@postgres:5432/db\n    depends_on: [redis, postgres]\n  redis:\n    image: redis:7\n  postgres:\n    image: postgres:15\n",
				services: func() map[string]environment.Service {
					s := fargate(8080)
					s.Environment = map[string]string{"REGION": "ap-northeast-1", "EXTRA": "1"}
					s.Secrets = map[string]string{"DATABASE_URL": "arn:aws:secretsmanager:ap-northeast-1:333333333333:secret:db"}
					return app(s)
				}(),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				c := container(only(t, p, "app"), "app")
				assert.Equal(t, map[string]string{
					"LOG_LEVEL": "debug", "REGION": "ap-northeast-1", "EXTRA": "1",
					"CACHE":   "rediss://vmctl-prod.example.ng.0001.apne1.cache.amazonaws.com:6379/0",
					"DB_HOST": "vmctl-prod.c0example.ap-northeast-1.rds.amazonaws.com:5432",
				}, envMap(c))
				require.Len(t, c.Secrets, 1)
				assert.Equal(t, "arn:aws:secretsmanager:ap-northeast-1:333333333333:secret:db", *c.Secrets[0].ValueFrom)
				assert.True(t, hasNote(p, "app", "environment.CACHE"))
				assert.Equal(t, []string{"postgres", "redis"}, []string{p.Managed[0].Service, p.Managed[1].Service})
				assert.Empty(t, only(t, p, "app").StartAfter, "managed stores order nothing")
			},
		},
		{
			name: "a container sharing the task takes only the overrides and secrets it names",
			fx: fixture{
				compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n  side:\n    image: y\n    network_mode: service:app\n    environment: {DATABASE_URL: local, MODE: local}\n",
				services: func() map[string]environment.Service {
					s := fargate(8080)
					s.Environment = map[string]string{"MODE": "aws", "ONLY_APP": "1"}
					s.Secrets = map[string]string{
						"DATABASE_URL": "arn:aws:secretsmanager:ap-northeast-1:333333333333:secret:db",
						"D_ID_API_KEY": "arn:aws:ssm:ap-northeast-1:333333333333:parameter/key",
					}
					return app(s)
				}(),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				main, side := container(s, "app"), container(s, "side")
				assert.Equal(t, map[string]string{"MODE": "aws", "ONLY_APP": "1"}, envMap(main))
				assert.Len(t, main.Secrets, 2)
				assert.Equal(t, map[string]string{"MODE": "aws"}, envMap(side))
				assert.Equal(t, []ecstypes.Secret{{Name: ptr("DATABASE_URL"), ValueFrom: ptr("arn:aws:secretsmanager:ap-northeast-1:333333333333:secret:db")}}, side.Secrets)
			},
		},
		{
			name: "a deploy section beyond the GPU reservation is noted",
			fx:   fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    deploy:\n      replicas: 3\n      resources: {limits: {cpus: \"0.5\"}}\n", services: app(fargate(8080))},
			check: func(t *testing.T, p *ecs.Plan) {
				assert.True(t, hasNote(p, "app", "deploy"))
				assert.Equal(t, "256", *only(t, p, "app").TaskDefinition.Cpu, "the environment sizes the task")
			},
		},
		{
			name: "health check: CMD-SHELL from a string, compose's defaults written out",
			fx:   fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    healthcheck:\n      test: curl -f http://127.0.0.1:8080/\n", services: app(fargate(8080))},
			check: func(t *testing.T, p *ecs.Plan) {
				hc := container(only(t, p, "app"), "app").HealthCheck
				require.NotNil(t, hc)
				assert.Equal(t, []string{"CMD-SHELL", "curl -f http://127.0.0.1:8080/"}, hc.Command)
				assert.Equal(t, [3]int32{30, 30, 3}, [3]int32{*hc.Interval, *hc.Timeout, *hc.Retries})
				assert.Nil(t, hc.StartPeriod)
			},
		},
		{
			name: "health check: every setting carried, and disable means none",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    healthcheck:\n      test: [CMD, /probe]\n      interval: 7s\n      timeout: 1500ms\n      retries: 9\n      start_period: 45s\n  side:\n    image: y\n    network_mode: service:app\n    healthcheck:\n      disable: true\n",
				services: app(fargate(8080)),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				hc := container(s, "app").HealthCheck
				assert.Equal(t, [4]int32{7, 2, 9, 45}, [4]int32{*hc.Interval, *hc.Timeout, *hc.Retries, *hc.StartPeriod})
				assert.Nil(t, container(s, "side").HealthCheck)
			},
		},
		{
			name: "depends_on within a task becomes dependsOn; across tasks, start order",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    healthcheck: {test: [CMD, /ok]}\n    depends_on:\n      api: {condition: service_healthy}\n  migrate:\n    image: m\n    network_mode: service:app\n  side:\n    image: y\n    network_mode: service:app\n    depends_on:\n      app: {condition: service_healthy}\n      migrate: {condition: service_completed_successfully}\n  api:\n    image: a\n    ports: [\"9000\"]\n    healthcheck:\n      test: [CMD, /ok]\n",
				services: map[string]environment.Service{"app": fargate(8080), "api": fargate(9000)},
				rel:      release.Release{Images: map[string]release.Image{}},
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				assert.Equal(t, []string{"app", "migrate", "side"}, s.Containers)
				// network_mode: service:app makes compose start app first.
				assert.Equal(t, []ecstypes.ContainerDependency{{ContainerName: ptr("app"), Condition: ecstypes.ContainerConditionStart}}, container(s, "migrate").DependsOn)
				assert.Equal(t, []ecstypes.ContainerDependency{
					{ContainerName: ptr("app"), Condition: ecstypes.ContainerConditionHealthy},
					{ContainerName: ptr("migrate"), Condition: ecstypes.ContainerConditionSuccess},
				}, container(s, "side").DependsOn)
				assert.Empty(t, container(s, "app").DependsOn, "api runs in its own task")
				assert.False(t, *container(s, "migrate").Essential, "a step others wait to finish may exit")
				assert.True(t, *container(s, "side").Essential)
				assert.Equal(t, []string{"api"}, s.StartAfter)
				assert.Equal(t, [][]string{{"api"}, {"app"}}, p.Order)
				assert.Len(t, p.Repositories, 4, "one per image: api, app, migrate, side")
			},
		},
		{
			name: "logs, CPU, memory and release tags",
			fx:   fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n", services: app(fargate(8080))},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				lc := container(s, "app").LogConfiguration
				assert.Equal(t, ecstypes.LogDriverAwslogs, lc.LogDriver)
				assert.Equal(t, map[string]string{"awslogs-group": "/vmctl/prod/app", "awslogs-region": "ap-northeast-1", "awslogs-stream-prefix": "app"}, lc.Options)
				assert.Equal(t, [2]string{"256", "512"}, [2]string{*s.TaskDefinition.Cpu, *s.TaskDefinition.Memory})
				assert.Contains(t, s.Service.Tags, ecstypes.Tag{Key: ptr("vmctl:release"), Value: ptr("r1")})
				assert.Contains(t, s.TaskDefinition.Tags, ecstypes.Tag{Key: ptr("vmctl:release"), Value: ptr("r1")})
			},
		},
		{
			name: "named volumes mapped to EFS access points, encrypted in transit; anonymous ones are task storage",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    volumes: [\"voice_profiles:/data:ro\", \"/scratch\"]\nvolumes:\n  voice_profiles:\n",
				services: app(fargate(8080)),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				mps := container(s, "app").MountPoints
				require.Len(t, mps, 2)
				assert.Equal(t, ecstypes.MountPoint{ContainerPath: ptr("/data"), SourceVolume: ptr("voice_profiles"), ReadOnly: boolPtr(true)}, mps[0])
				require.Len(t, s.TaskDefinition.Volumes, 2)
				efs := s.TaskDefinition.Volumes[1].EfsVolumeConfiguration
				require.NotNil(t, efs)
				assert.Equal(t, "fs-03333333333333333", *efs.FileSystemId)
				assert.Equal(t, "fsap-03333333333330001", *efs.AuthorizationConfig.AccessPointId)
				assert.Equal(t, ecstypes.EFSTransitEncryptionEnabled, efs.TransitEncryption)
				assert.Nil(t, s.TaskDefinition.Volumes[0].EfsVolumeConfiguration, "scratch")
			},
		},
		{
			name: "ec2-gpu: EC2, awsvpc, GPU count from the reservation, the GPU capacity provider, one task per host",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    ports: [\"8001\"]\n    deploy:\n      resources:\n        reservations:\n          devices: [{driver: nvidia, count: 1, capabilities: [gpu]}]\n",
				services: app(gpuHost(8001, 1)),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				td := s.TaskDefinition
				assert.Equal(t, []ecstypes.Compatibility{ecstypes.CompatibilityEc2}, td.RequiresCompatibilities)
				assert.Equal(t, ecstypes.NetworkModeAwsvpc, td.NetworkMode)
				assert.Equal(t, "attribute:ecs.instance-type == g4dn.xlarge", *td.PlacementConstraints[0].Expression)
				assert.Equal(t, []ecstypes.ResourceRequirement{{Type: ecstypes.ResourceTypeGpu, Value: ptr("1")}}, container(s, "app").ResourceRequirements)
				assert.Equal(t, "vmctl-prod-gpu", *s.Service.CapacityProviderStrategy[0].CapacityProvider)
				assert.Equal(t, ecstypes.PlacementConstraintTypeDistinctInstance, s.Service.PlacementConstraints[0].Type)
				assert.Equal(t, int32(120), *s.Service.HealthCheckGracePeriodSeconds)
			},
		},
		{
			name: "Fargate Spot above an on-demand base",
			fx: fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n", services: func() map[string]environment.Service {
				s := fargate(8080)
				s.Spot, s.OnDemandBase = true, 2
				return app(s)
			}()},
			check: func(t *testing.T, p *ecs.Plan) {
				assert.Equal(t, []ecstypes.CapacityProviderStrategyItem{
					{CapacityProvider: ptr("FARGATE"), Base: 2},
					{CapacityProvider: ptr("FARGATE_SPOT"), Weight: 1},
				}, only(t, p, "app").Service.CapacityProviderStrategy)
			},
		},
		{
			name: "rolling with circuit breaker and rollback; a public service behind the ALB",
			fx: fixture{
				compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    x-vmctl: {health_path: /healthz}\n",
				services: func() map[string]environment.Service {
					s := fargate(8080)
					s.Health.Path = "/healthz"
					s.LoadBalancer = &environment.LoadBalancer{PathPatterns: []string{"/app/*"}}
					return app(s)
				}(),
				edit: func(e *environment.Environment) { e.AWS.Deployment.Strategy = environment.StrategyRolling },
			},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				dc := s.Service.DeploymentConfiguration
				assert.Equal(t, ecstypes.DeploymentStrategyRolling, dc.Strategy)
				assert.Equal(t, ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: true}, *dc.DeploymentCircuitBreaker)
				assert.Nil(t, dc.BakeTimeInMinutes)
				require.NotNil(t, s.LoadBalancer)
				assert.Equal(t, "vmctl-prod-app", s.LoadBalancer.TargetGroup)
				assert.Empty(t, s.LoadBalancer.AlternateTargetGroup)
				assert.Equal(t, "/healthz", *s.LoadBalancer.TargetGroupSettings.HealthCheckPath)
				assert.Equal(t, "ip", string(s.LoadBalancer.TargetGroupSettings.TargetType))
				assert.Equal(t, ecstypes.LoadBalancer{ContainerName: ptr("app"), ContainerPort: int32Ptr(8080)}, s.Service.LoadBalancers[0])
			},
		},
		{
			name: "blue/green: ECS-native, with an alternate target group and bake time",
			fx: fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n", services: func() map[string]environment.Service {
				s := fargate(8080)
				s.LoadBalancer = &environment.LoadBalancer{PathPatterns: []string{"/*"}}
				return app(s)
			}()},
			check: func(t *testing.T, p *ecs.Plan) {
				s := only(t, p, "app")
				assert.Equal(t, ecstypes.DeploymentControllerTypeEcs, s.Service.DeploymentController.Type)
				assert.Equal(t, ecstypes.DeploymentStrategyBlueGreen, s.Service.DeploymentConfiguration.Strategy)
				assert.Equal(t, int32(ecs.BakeMinutes), *s.Service.DeploymentConfiguration.BakeTimeInMinutes)
				assert.Equal(t, "vmctl-prod-app-alt", s.LoadBalancer.AlternateTargetGroup)
				assert.Equal(t, "arn:aws:iam::333333333333:role/vmctl-prod-ecs-infrastructure", *s.Service.LoadBalancers[0].AdvancedConfiguration.RoleArn)
			},
		},
		{
			name: "working hours: scale to zero outside them",
			fx: fixture{
				compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n", services: app(fargate(8080)),
				edit: func(e *environment.Environment) {
					e.AWS.Schedule = &environment.Schedule{TimeZone: "Asia/Tokyo", Days: []string{"mon", "fri"}, Start: "08:30", Stop: "20:00"}
				},
			},
			check: func(t *testing.T, p *ecs.Plan) {
				sch := only(t, p, "app").Scaling.Schedule
				require.Len(t, sch, 2)
				assert.Equal(t, "cron(30 8 ? * MON,FRI *)", *sch[0].Schedule)
				assert.Equal(t, [2]int32{1, 2}, [2]int32{*sch[0].ScalableTargetAction.MinCapacity, *sch[0].ScalableTargetAction.MaxCapacity})
				assert.Equal(t, "cron(0 20 ? * MON,FRI *)", *sch[1].Schedule)
				assert.Equal(t, [2]int32{0, 0}, [2]int32{*sch[1].ScalableTargetAction.MinCapacity, *sch[1].ScalableTargetAction.MaxCapacity})
				assert.Equal(t, "Asia/Tokyo", *sch[1].Timezone)
			},
		},
		{
			name: "harmless keys are noted, not fatal",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    build: .\n    container_name: my-app\n    restart: unless-stopped\n    ports: [\"8080\"]\n",
				services: app(fargate(8080)),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				for _, key := range []string{"build", "container_name", "restart"} {
					assert.True(t, hasNote(p, "app", key), key)
				}
			},
		},
		{
			name: "privileged is carried on EC2 hosts",
			fx: fixture{
				compose:  "services:\n  app:\n    image: x\n    privileged: true\n    read_only: true\n    init: true\n    stop_grace_period: 90s\n    ports: [\"8001\"]\n    gpus: all\n",
				services: app(gpuHost(8001, 1)),
			},
			check: func(t *testing.T, p *ecs.Plan) {
				c := container(only(t, p, "app"), "app")
				assert.True(t, *c.Privileged)
				assert.True(t, *c.ReadonlyRootFilesystem)
				assert.True(t, *c.LinuxParameters.InitProcessEnabled)
				assert.Equal(t, int32(90), *c.StopTimeout)
				assert.Equal(t, "1", *c.ResourceRequirements[0].Value, "gpus: all takes the environment's count")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.fx.render(t)
			require.NoError(t, err)
			tt.check(t, p)
		})
	}
}

func TestRejections(t *testing.T) {
	gpuReservation := "    deploy:\n      resources:\n        reservations:\n          devices: [{driver: nvidia, count: 2, capabilities: [gpu]}]\n"
	tests := []struct {
		name string
		fx   fixture
		want []string // fragments of the one error: service, key, why
	}{
		{"privileged on Fargate", fixture{compose: "services:\n  app:\n    image: x\n    privileged: true\n    ports: [\"8080\"]\n", services: app(fargate(8080))},
			[]string{"service app: privileged: Fargate runs no privileged containers"}},
		{"host networking", fixture{compose: "services:\n  app:\n    image: x\n    network_mode: host\n", services: app(fargate(8080))},
			[]string{"service app: network_mode: host:", "awsvpc"}},
		{"bind mount of a host path", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    volumes: [\"/etc/app:/config\"]\n", services: app(fargate(8080))},
			[]string{"service app: volumes[0]: bind mount of host path /etc/app"}},
		{"a named volume that binds a host path", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    volumes: [\"data:/data\"]\nvolumes:\n  data:\n    driver_opts: {type: none, o: bind, device: /srv/data}\n", services: app(fargate(8080))},
			[]string{"service app: volumes[0]: volume data binds a host path"}},
		{"a named volume without EFS", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    volumes: [\"cache:/cache\"]\nvolumes:\n  cache:\n", services: app(fargate(8080))},
			[]string{"service app: volumes[0]: named volume cache is not mapped to EFS", "stores.efs.volumes.cache"}},
		{"a GPU reservation on Fargate", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n" + gpuReservation, services: app(fargate(8080))},
			[]string{"service app: deploy.resources.reservations.devices: reserves 2 GPU", "Fargate, which has no GPUs"}},
		{"a GPU count the environment does not give", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8001\"]\n" + gpuReservation, services: app(gpuHost(8001, 1))},
			[]string{"service app: deploy.resources.reservations.devices: reserves 2 GPU, but services.app.gpu.count in prod.yaml is 1"}},
		{"GPU hosts for a service that reserves no GPU", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8001\"]\n", services: app(gpuHost(8001, 1))},
			[]string{"service app: prod.yaml services.app.placement: ec2-gpu", "reserves no GPU"}},
		{"a device that is not a GPU", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    deploy:\n      resources:\n        reservations:\n          devices: [{driver: xilinx, count: 1, capabilities: [fpga]}]\n", services: app(fargate(8080))},
			[]string{"service app: deploy.resources.reservations.devices[0]: reserves a fpga device; ECS hands out only GPUs"}},
		{"a name ECS does not take", fixture{compose: "services:\n  my.app:\n    image: x\n    ports: [\"8080\"]\n", services: map[string]environment.Service{"my.app": fargate(8080)}},
			[]string{"service my.app: ECS names services and containers with letters, digits, - and _ only"}},
		{"a container port published twice", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080:80\", \"8081:80\"]\n", services: app(fargate(80))},
			[]string{"service app: ports: container port 80/tcp is published twice (8080 and 8081)"}},
		{"a host port published twice", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080:80\", \"8080:81\"]\n", services: app(fargate(80))},
			[]string{"service app: ports: host port 8080/tcp is published twice (to 80 and 81)"}},
		{"the environment's port is not the stack's", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n", services: app(fargate(9999))},
			[]string{"service app: prod.yaml services.app.port: 9999 is not a port the stack's app listens on (8080/tcp)"}},
		{"a service in the environment but not in the stack", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n", services: map[string]environment.Service{"app": fargate(8080), "ghost": fargate(8080)}},
			[]string{"service ghost: prod.yaml services.ghost: no such service in the stack (services: app)"}},
		{"a service in the stack but not in the environment", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n  worker:\n    image: w\n", services: app(fargate(8080))},
			[]string{"service worker: prod.yaml services: the stack runs worker but prod.yaml does not place it"}},
		{"a store the environment does not declare", fixture{
			compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n  redis:\n    image: redis\n", services: app(fargate(8080)),
			edit: func(e *environment.Environment) { e.AWS.Stores.Redis.Endpoint = "" }},
			[]string{"service redis: prod.yaml services: the stack runs redis but prod.yaml does not place it"}},
		{"a secret-looking plain variable", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    environment: {STRIPE_API_KEY: sk-planted}\n", services: app(fargate(8080))},
			[]string{"service app: environment.STRIPE_API_KEY: looks like a secret", "services.app.secrets in prod.yaml"}},
		{"a password in a URL", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    environment: {BROKER: amqp://u:pw@mq:5672/}\n", services: app(fargate(8080))},
			[]string{"service app: environment.BROKER: carries a password in its URL"}},
		{"compose secrets", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    secrets: [tok]\nsecrets:\n  tok: {file: ./tok.txt}\n", services: app(fargate(8080))},
			[]string{"service app: secrets: compose secrets are files on this machine", "services.app.secrets"}},
		{"a key ECS has nothing for", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    cap_add: [NET_ADMIN]\n", services: app(fargate(8080))},
			[]string{"service app: cap_add: ECS has nothing vmctl renders it into"}},
		{"a health check interval ECS does not allow", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    healthcheck: {test: [CMD, /ok], interval: 2s, retries: 20}\n", services: app(fargate(8080))},
			[]string{"service app: healthcheck.interval: 2 s is outside the 5–300 s ECS allows", "service app: healthcheck.retries: 20 is outside the 1–10 ECS allows"}},
		{"a stop grace period over ECS's limit", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    stop_grace_period: 5m\n", services: app(fargate(8080))},
			[]string{"service app: stop_grace_period: 5m0s is longer than the 120 s ECS allows"}},
		{"a health path the container does not serve", fixture{
			compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n    x-vmctl: {health_path: /health}\n",
			services: func() map[string]environment.Service {
				s := fargate(8080)
				s.Health.Path = "/ready"
				s.LoadBalancer = &environment.LoadBalancer{PathPatterns: []string{"/*"}}
				return app(s)
			}()},
			[]string{"service app: prod.yaml services.app.health.path: /ready differs from the stack's x-vmctl.health_path /health"}},
		{"a sidecar with its own environment entry", fixture{compose: "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n  side:\n    image: y\n    network_mode: service:app\n", services: map[string]environment.Service{"app": fargate(8080), "side": fargate(8081)}},
			[]string{"service side: prod.yaml services.side: it shares app's network"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.fx.render(t)
			require.Error(t, err)
			assert.Nil(t, p)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "render prod: "), err.Error())
			assert.NotContains(t, err.Error(), "sk-planted", "a rejection never repeats a value")
		})
	}
}

func TestRenderNeedsAnAWSEnvironmentAndAValidRelease(t *testing.T) {
	st := loadStack(t, stackFile)
	_, err := ecs.Render(st, loadEnv(t, "local"), release.Release{})
	require.ErrorContains(t, err, "render local: it is kind local; only kind aws environments render to ECS")

	_, err = ecs.Render(st, loadEnv(t, "prod"), release.Release{Images: map[string]release.Image{"backend": {Digest: "sha256:nothex"}}})
	require.ErrorContains(t, err, `render prod: release: images.backend.digest "sha256:nothex" is not sha256: and 64 hex digits`)
}

func ptr(s string) *string    { return &s }
func boolPtr(b bool) *bool    { return &b }
func int32Ptr(n int32) *int32 { return &n }

// The ECR lifecycle never selects a tagged image: every release image carries its release
// id, and ECR cannot tell which of them an environment runs or may roll back to.
func TestLifecycleExpiresOnlyUntaggedImages(t *testing.T) {
	st := loadStack(t, stackFile)
	for _, name := range []string{"dev", "staging", "prod"} {
		plan, err := ecs.Render(st, loadEnv(t, name), fakeRelease())
		require.NoError(t, err)
		require.NotEmpty(t, plan.Repositories)
		for _, r := range plan.Repositories {
			var policy struct {
				Rules []struct {
					Selection struct {
						TagStatus string `json:"tagStatus"`
					} `json:"selection"`
					Action struct {
						Type string `json:"type"`
					} `json:"action"`
				} `json:"rules"`
			}
			require.NoError(t, json.Unmarshal([]byte(*r.Lifecycle.LifecyclePolicyText), &policy), r.Name)
			require.NotEmpty(t, policy.Rules, r.Name)
			for _, rule := range policy.Rules {
				if rule.Action.Type == "expire" {
					assert.Equal(t, "untagged", rule.Selection.TagStatus, "%s %s: an expire rule may select untagged images only", name, r.Name)
				}
			}
		}
	}
}
