package infra_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/infra"
)

// doc is a rendered template read back as JSON: what CloudFormation receives.
type doc struct {
	Parameters map[string]map[string]any
	Resources  map[string]struct {
		Type                string
		Properties          map[string]any
		DeletionPolicy      string
		UpdateReplacePolicy string
		DependsOn           any
	}
	Outputs map[string]struct{ Value any }
}

func renderDoc(t *testing.T, env *environment.Environment) doc {
	t.Helper()
	body, err := infra.TemplateJSON(render(t, loadStack(t), env))
	require.NoError(t, err)
	var d doc
	require.NoError(t, json.Unmarshal(body, &d))
	return d
}

// ofType lists the logical ids of one resource type, sorted.
func (d doc) ofType(typ string) []string {
	var ids []string
	for id, r := range d.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// refName is the logical id a {"Ref": X} or {"Fn::GetAtt": [X, …]} names, or the literal.
func refName(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if r, ok := x["Ref"].(string); ok {
			return r
		}
		if ga, ok := x["Fn::GetAtt"].([]any); ok && len(ga) > 0 {
			return fmt.Sprint(ga[0])
		}
	}
	return fmt.Sprint(v)
}

// rule is one ingress rule: which group takes which port from where.
type rule struct {
	Group, From string
	Port        int
}

func ingressRules(t *testing.T, d doc) []rule {
	t.Helper()
	var out []rule
	for _, id := range d.ofType("AWS::EC2::SecurityGroup") {
		_, inline := d.Resources[id].Properties["SecurityGroupIngress"]
		assert.False(t, inline, "%s has inline ingress: rules are separate resources", id)
		_, egress := d.Resources[id].Properties["SecurityGroupEgress"]
		assert.False(t, egress, "%s narrows or widens egress; seed §2.2 leaves egress open", id)
	}
	for _, id := range d.ofType("AWS::EC2::SecurityGroupIngress") {
		p := d.Resources[id].Properties
		from, ok := p["CidrIp"].(string)
		if !ok {
			from = refName(p["SourceSecurityGroupId"])
		}
		require.Equal(t, p["FromPort"], p["ToPort"], "%s opens a range", id)
		require.Equal(t, "tcp", p["IpProtocol"], id)
		out = append(out, rule{Group: refName(p["GroupId"]), From: from, Port: int(p["FromPort"].(float64))})
	}
	slices.SortFunc(out, func(a, b rule) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

// TestSecurityGroupsAreSeedSection22 compares every ingress rule with seed §2.2's table:
// nothing is open that the plan does not open, and only the ALB takes the internet.
func TestSecurityGroupsAreSeedSection22(t *testing.T) {
	const bastion = "sg-0123456789abcdef0"
	endpoints := []rule{{"SecurityGroupEndpoints", "10.0.11.0/24", 443}, {"SecurityGroupEndpoints", "10.0.12.0/24", 443}}
	services := []rule{
		{"SecurityGroupFrontend", "SecurityGroupAlb", 55434},
		{"SecurityGroupBackend", "SecurityGroupAlb", 55433},
		{"SecurityGroupVoicevox", "SecurityGroupBackend", 50021},
		{"SecurityGroupOpenvoice", "SecurityGroupBackend", 8001},
		{"SecurityGroupRds", "SecurityGroupBackend", 5432},
		{"SecurityGroupRedis", "SecurityGroupBackend", 6379},
		{"SecurityGroupEfs", "SecurityGroupBackend", 2049},
		{"SecurityGroupEfs", "SecurityGroupOpenvoice", 2049},
	}
	for _, tc := range []struct {
		name  string
		env   func(*environment.Environment)
		extra []rule
	}{
		{"no domain: port 80 only", func(*environment.Environment) {}, []rule{{"SecurityGroupAlb", "0.0.0.0/0", 80}}},
		{"https and a bastion", func(e *environment.Environment) {
			e.AWS.Domain, e.AWS.Network.BastionSecurityGroup = "vmapp.example.com", bastion
		}, []rule{{"SecurityGroupAlb", "0.0.0.0/0", 80}, {"SecurityGroupAlb", "0.0.0.0/0", 443}, {"SecurityGroupOpenvoice", bastion, 22}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := loadEnv(t, "prod")
			tc.env(env)
			got := ingressRules(t, renderDoc(t, env))
			want := slices.Concat(services, endpoints, tc.extra)
			slices.SortFunc(want, func(a, b rule) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
			assert.Equal(t, want, got)
			for _, r := range got {
				if strings.Contains(r.From, "/") && r.Group != "SecurityGroupEndpoints" {
					assert.Equal(t, "SecurityGroupAlb", r.Group, "only the ALB takes traffic from an address range: %v", r)
				}
			}
		})
	}
}

// TestNothingPublicButTheEdge: the ALB and CloudFront are the only ways in; no instance,
// subnet, database or bucket is reachable from the internet.
func TestNothingPublicButTheEdge(t *testing.T) {
	for _, name := range envNames {
		t.Run(name, func(t *testing.T) {
			d := renderDoc(t, loadEnv(t, name))
			for _, id := range d.ofType("AWS::EC2::Subnet") {
				assert.Equal(t, false, d.Resources[id].Properties["MapPublicIpOnLaunch"], "%s gives instances public addresses", id)
			}
			lt, _ := json.Marshal(d.Resources[infra.LogicalGPULaunchTemplate].Properties)
			assert.NotContains(t, string(lt), "AssociatePublicIpAddress", "the GPU hosts get no public address")
			assert.Contains(t, string(lt), `"HttpTokens":"required"`, "the GPU hosts' metadata needs IMDSv2")
			assert.Equal(t, []string{infra.LogicalLoadBalancer}, d.ofType("AWS::ElasticLoadBalancingV2::LoadBalancer"))
			assert.Equal(t, false, d.Resources[infra.LogicalDatabase].Properties["PubliclyAccessible"])

			block := d.Resources[infra.LogicalVideoBucket].Properties["PublicAccessBlockConfiguration"].(map[string]any)
			for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
				assert.Equal(t, true, block[k], "bucket %s", k)
			}
			// The bucket policy allows CloudFront alone, for this distribution alone.
			pol := d.Resources["VideoBucketPolicy"].Properties["PolicyDocument"].(map[string]any)
			for _, s := range pol["Statement"].([]any) {
				st := s.(map[string]any)
				if st["Effect"] != "Allow" {
					continue
				}
				assert.Equal(t, map[string]any{"Service": "cloudfront.amazonaws.com"}, st["Principal"])
				cond, _ := json.Marshal(st["Condition"])
				assert.Contains(t, string(cond), "distribution/${Cdn}")
			}
		})
	}
}

// TestStatefulResourcesAreProtected: what holds data survives a stack delete and is never
// replaced without a copy.
func TestStatefulResourcesAreProtected(t *testing.T) {
	d := renderDoc(t, loadEnv(t, "prod"))
	for _, id := range infra.Stateful {
		r, ok := d.Resources[id]
		require.True(t, ok, "%s is not in the template", id)
		assert.Contains(t, []string{"Retain", "Snapshot"}, r.DeletionPolicy, "%s DeletionPolicy", id)
		assert.Contains(t, []string{"Retain", "Snapshot"}, r.UpdateReplacePolicy, "%s UpdateReplacePolicy", id)
	}
	db := d.Resources[infra.LogicalDatabase].Properties
	assert.Equal(t, true, db["DeletionProtection"])
	assert.Equal(t, false, renderDoc(t, loadEnv(t, "dev")).Resources[infra.LogicalDatabase].Properties["DeletionProtection"],
		"dev may be destroyed (its snapshot stays): RDS's own protection would stop the stack's delete")
	assert.Equal(t, true, db["StorageEncrypted"])
	assert.Equal(t, true, db["ManageMasterUserPassword"])
	assert.Equal(t, true, db["MultiAZ"])
	assert.Greater(t, db["BackupRetentionPeriod"], 0.0)
	assert.Equal(t, true, d.Resources[infra.LogicalDataKey].Properties["EnableKeyRotation"])
	assert.Equal(t, 365.0, d.Resources[infra.LogicalDataKey].Properties["RotationPeriodInDays"])
	assert.Equal(t, true, d.Resources[infra.LogicalFileSystem].Properties["Encrypted"])
	cache := d.Resources[infra.LogicalCache].Properties
	assert.Equal(t, true, cache["TransitEncryptionEnabled"])
	assert.Equal(t, true, cache["AtRestEncryptionEnabled"])
	assert.Equal(t, true, cache["AutomaticFailoverEnabled"], "prod has a replica, so it fails over")

	// The audit log outlives a protected environment's stack; dev's goes with it, or its
	// fixed name would stop the stack from being created again after vmctl infra destroy.
	assert.Equal(t, "Retain", d.Resources[infra.LogicalAuditLogGroup].DeletionPolicy)
	assert.Equal(t, "Delete", renderDoc(t, loadEnv(t, "dev")).Resources[infra.LogicalAuditLogGroup].DeletionPolicy)
}

// TestBringYourOwnNetworkCreatesNone: ids the file names are used as they are.
func TestBringYourOwnNetworkCreatesNone(t *testing.T) {
	env := byoNetwork(t, loadEnv(t, "staging"))
	d := renderDoc(t, env)
	for _, typ := range []string{
		"AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::EC2::NatGateway",
		"AWS::EC2::InternetGateway", "AWS::EC2::VPCEndpoint", "AWS::RDS::DBInstance", "AWS::ElastiCache::ReplicationGroup",
		"AWS::EFS::FileSystem", "AWS::EFS::AccessPoint",
	} {
		assert.Empty(t, d.ofType(typ), "the file brings its own; the stack creates no %s", typ)
	}
	assert.Equal(t, "vpc-0b0b0b0b0b0b0b0b0", d.Resources[infra.LogicalTargetGroup("backend", false)].Properties["VpcId"])
	assert.Equal(t, []any{env.AWS.Network.SecurityGroups["alb"]}, d.Resources[infra.LogicalLoadBalancer].Properties["SecurityGroups"])
	assert.Equal(t, "vpc-0b0b0b0b0b0b0b0b0", d.Outputs[infra.OutVPC].Value)
	assert.Equal(t, "fs-0b0b0b0b0b0b0b0b0", d.Outputs[infra.OutFileSystem].Value)
	assert.Equal(t, env.AWS.Network.SecurityGroups["backend"], d.Outputs[infra.OutSecurityGroup("backend")].Value)
	_, dbSchedule := d.Resources["DatabaseScheduleStop"]
	assert.False(t, dbSchedule)
}

// TestNamesMatchThePlan: deploy finds what the stack made by the names the plan uses.
func TestNamesMatchThePlan(t *testing.T) {
	st := loadStack(t)
	for _, name := range envNames {
		t.Run(name, func(t *testing.T) {
			env := loadEnv(t, name)
			plan := planFor(t, st, env)
			d := renderDoc(t, env)
			prop := func(id, key string) any { return d.Resources[id].Properties[key] }
			assert.Equal(t, plan.Cluster, prop(infra.LogicalCluster, "ClusterName"))
			assert.Equal(t, plan.Cluster, prop(infra.LogicalNamespace, "Name"), "Service Connect's namespace is the cluster's name")
			assert.Equal(t, plan.LogGroup.Name, prop(infra.LogicalAppLogGroup, "LogGroupName"))
			assert.Equal(t, float64(plan.LogGroup.RetentionDays), prop(infra.LogicalAppLogGroup, "RetentionInDays"))
			assert.Equal(t, plan.AuditLogGroup.Name, prop(infra.LogicalAuditLogGroup, "LogGroupName"))
			assert.Equal(t, float64(plan.AuditLogGroup.RetentionDays), prop(infra.LogicalAuditLogGroup, "RetentionInDays"))

			roles := map[string]bool{}
			for _, id := range d.ofType("AWS::IAM::Role") {
				if n, ok := prop(id, "RoleName").(string); ok {
					roles[n] = true
				}
			}
			for _, s := range plan.Services {
				for _, arn := range []*string{s.TaskDefinition.ExecutionRoleArn, s.TaskDefinition.TaskRoleArn} {
					if arn != nil {
						assert.True(t, roles[(*arn)[strings.LastIndex(*arn, "/")+1:]], "the plan's role %s", *arn)
					}
				}
				for _, lb := range s.Service.LoadBalancers {
					if lb.AdvancedConfiguration != nil && lb.AdvancedConfiguration.RoleArn != nil {
						arn := *lb.AdvancedConfiguration.RoleArn
						assert.True(t, roles[arn[strings.LastIndex(arn, "/")+1:]], "the plan's role %s", arn)
					}
				}
				assert.True(t, roles[infra.TaskRoleName(plan.Cluster, s.Name)], "task role of %s", s.Name)
				if lb := s.LoadBalancer; lb != nil {
					tg := prop(infra.LogicalTargetGroup(s.Name, false), "Name")
					assert.Equal(t, lb.TargetGroup, tg)
					assert.Equal(t, float64(*lb.TargetGroupSettings.Port), prop(infra.LogicalTargetGroup(s.Name, false), "Port"))
					assert.Equal(t, lb.HealthPath, prop(infra.LogicalTargetGroup(s.Name, false), "HealthCheckPath"))
					if lb.AlternateTargetGroup != "" {
						assert.Equal(t, lb.AlternateTargetGroup, prop(infra.LogicalTargetGroup(s.Name, true), "Name"))
					} else {
						assert.NotContains(t, d.Resources, infra.LogicalTargetGroup(s.Name, true))
					}
				}
				if h := s.Hosts; h != nil {
					assert.Equal(t, h.AutoScalingGroup, prop(infra.LogicalGPUAutoScalingGroup, "AutoScalingGroupName"))
					assert.Equal(t, h.CapacityProvider, prop(infra.LogicalGPUCapacityProvider, "Name"))
					assert.Equal(t, fmt.Sprint(h.Min), prop(infra.LogicalGPUAutoScalingGroup, "MinSize"))
					assert.Equal(t, fmt.Sprint(h.Max), prop(infra.LogicalGPUAutoScalingGroup, "MaxSize"))
					for _, cp := range s.Service.CapacityProviderStrategy {
						assert.Equal(t, h.CapacityProvider, *cp.CapacityProvider)
					}
				}
			}
			providers, _ := json.Marshal(prop(infra.LogicalClusterCapacityProviders, "CapacityProviders"))
			assert.JSONEq(t, `["FARGATE","FARGATE_SPOT",{"Ref":"GpuCapacityProvider"}]`, string(providers))
		})
	}
}

// TestRoutes: one rule per routed service; the health path rides along where the service's
// own patterns miss it; the catch-all is an explicit rule, last.
func TestRoutes(t *testing.T) {
	d := renderDoc(t, loadEnv(t, "prod"))
	values := func(id string) []any {
		c := d.Resources[id].Properties["Conditions"].([]any)[0].(map[string]any)
		return c["PathPatternConfig"].(map[string]any)["Values"].([]any)
	}
	assert.Equal(t, []any{"/api/*", "/health"}, values(infra.LogicalRule("backend")), "/health is outside /api/* and would reach the frontend")
	assert.Equal(t, []any{"/*"}, values(infra.LogicalRule("frontend")), "/ is inside /*")
	back, front := d.Resources[infra.LogicalRule("backend")].Properties["Priority"].(float64), d.Resources[infra.LogicalRule("frontend")].Properties["Priority"].(float64)
	assert.Less(t, back, front, "the catch-all comes last")
	def, _ := json.Marshal(d.Resources[infra.LogicalHTTPListener].Properties["DefaultActions"])
	assert.Contains(t, string(def), `"StatusCode":"404"`, "what no rule routes is not served")
	assert.Equal(t, []string{"RuleBackend", "RuleFrontend"}, d.ofType("AWS::ElasticLoadBalancingV2::ListenerRule"))

	env := loadEnv(t, "prod")
	env.AWS.Domain = "vmapp.example.com"
	d = renderDoc(t, env)
	assert.Equal(t, "HttpsListener", refName(d.Resources[infra.LogicalRule("backend")].Properties["ListenerArn"]))
	https := d.Resources[infra.LogicalHTTPSListener].Properties
	assert.Equal(t, "ELBSecurityPolicy-TLS13-1-2-2021-06", https["SslPolicy"])
	redirect, _ := json.Marshal(d.Resources[infra.LogicalHTTPListener].Properties["DefaultActions"])
	assert.Contains(t, string(redirect), `"Protocol":"HTTPS"`)
	assert.Contains(t, string(redirect), `"StatusCode":"HTTP_301"`)
	assert.Contains(t, d.Resources, "Certificate", "a domain without a certificate ARN gets one requested")
}

// TestOutputsCoverTheContract: every output key the other commands read is there.
func TestOutputsCoverTheContract(t *testing.T) {
	env := loadEnv(t, "prod")
	env.AWS.Domain = "vmapp.example.com"
	d := renderDoc(t, env)
	want := []string{
		infra.OutVPC, infra.OutPublicSubnets, infra.OutPrivateSubnets, infra.OutDatabaseSubnets, infra.OutCluster,
		infra.OutLoadBalancer, infra.OutLoadBalancerDNS, infra.OutHTTPSListener, infra.OutListener, infra.OutFileSystem,
		infra.OutPostgres, infra.OutPostgresSecret, infra.OutRedis, infra.OutVideoBucket, infra.OutCDNDomain, infra.OutKMSKey,
		infra.OutAlarmTopic, infra.OutGPUGroup, infra.OutAccessPoint("voice_profiles"), infra.OutAccessPoint("model_cache"),
	}
	for _, role := range []string{"alb", "frontend", "backend", "voicevox", "openvoice", "rds", "redis", "efs"} {
		want = append(want, infra.OutSecurityGroup(role))
	}
	slices.Sort(want)
	assert.Equal(t, want, slices.Sorted(maps.Keys(d.Outputs)))
}

// TestScheduleStopsWhatCostsByTheHour: dev's GPU hosts and database stop out of hours;
// environments without a schedule have no such thing.
func TestScheduleStopsWhatCostsByTheHour(t *testing.T) {
	d := renderDoc(t, loadEnv(t, "dev"))
	stop := d.Resources["GpuScheduleStop"].Properties
	assert.Equal(t, "0 20 * * 1,2,3,4,5", stop["Recurrence"])
	assert.Equal(t, "Asia/Tokyo", stop["TimeZone"])
	assert.Equal(t, 0.0, stop["MaxSize"])
	assert.Equal(t, 0.0, stop["DesiredCapacity"])
	start := d.Resources["GpuScheduleStart"].Properties
	assert.Equal(t, "0 8 * * 1,2,3,4,5", start["Recurrence"])
	assert.Equal(t, 1.0, start["MinSize"])
	assert.Equal(t, 2.0, start["MaxSize"])
	db := d.Resources["DatabaseScheduleStop"].Properties
	assert.Equal(t, "cron(0 20 ? * MON,TUE,WED,THU,FRI *)", db["ScheduleExpression"])
	target := db["Target"].(map[string]any)
	assert.Equal(t, "arn:aws:scheduler:::aws-sdk:rds:stopDBInstance", target["Arn"])
	assert.Equal(t, "arn:aws:scheduler:::aws-sdk:rds:startDBInstance", d.Resources["DatabaseScheduleStart"].Properties["Target"].(map[string]any)["Arn"])

	for _, name := range []string{"staging", "prod"} {
		d := renderDoc(t, loadEnv(t, name))
		assert.Empty(t, d.ofType("AWS::Scheduler::Schedule"), name)
		assert.Empty(t, d.ofType("AWS::AutoScaling::ScheduledAction"), name)
	}
}

// TestRenderProblems: what CloudFormation would reject fails the render, all of it in one
// error, each line naming the file, line and field.
func TestRenderProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*environment.Environment)
		want   []string
	}{
		{"no budget", func(e *environment.Environment) { e.AWS.Budget = nil }, []string{"prod.yaml:", "aws.budget: is required"}},
		{"budget of 0", func(e *environment.Environment) { e.AWS.Budget.MonthlyUSD = 0 }, []string{"aws.budget.monthly_usd: 0 is not a positive amount"}},
		{"Fargate pair", func(e *environment.Environment) {
			s := e.Services["backend"]
			s.Memory = 1024
			e.Services["backend"] = s
		}, []string{"services.backend.memory: 1024 MiB is not a Fargate memory size for cpu 2048"}},
		{"subnet outside the VPC", func(e *environment.Environment) { e.AWS.Network.Subnets.Private[0].CIDR = "10.1.11.0/24" }, []string{"aws.network.subnets.private[0].cidr: 10.1.11.0/24 is outside the VPC's 10.0.0.0/16"}},
		{"overlapping subnets", func(e *environment.Environment) { e.AWS.Network.Subnets.Database[1].CIDR = "10.0.0.0/20" }, []string{"aws.network.subnets.database[1].cidr: 10.0.0.0/20 overlaps"}},
		{"NAT count", func(e *environment.Environment) { e.AWS.Network.NATGateways = 3 }, []string{"aws.network.nat_gateways: 3 is neither 1"}},
		{"half a network", func(e *environment.Environment) { e.AWS.Network.VPCID = "vpc-0b0b0b0b0b0b0b0b0" }, []string{"aws.network.subnets.public[0].id: is required"}},
		{"no NAT count", func(e *environment.Environment) { e.AWS.Network.NATGateways = 0 }, []string{"aws.network.nat_gateways: is required with the stack's own VPC"}},
		{"a group in a VPC that does not exist yet", func(e *environment.Environment) {
			e.AWS.Network.SecurityGroups = map[string]string{"backend": "sg-0123456789abcdef0"}
		}, []string{"aws.network.security_groups.backend: names an existing group"}},
		{"no backups", func(e *environment.Environment) { e.AWS.Stores.Postgres.BackupRetentionDays = 0 }, []string{"aws.stores.postgres.backup_retention_days: 0 is not between 1 and 35"}},
		{"role names too long", func(e *environment.Environment) { e.AWS.Cluster = "vmctl-" + strings.Repeat("x", 50) }, []string{"aws.cluster: ", "longer than the 64 characters IAM allows"}},
		{"two at once", func(e *environment.Environment) {
			e.AWS.Budget.AnomalyPercent = 0
			e.AWS.Stores.Redis.NodeType = "t4g.small"
		}, []string{"aws.budget.anomaly_percent", "aws.stores.redis.node_type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := loadStack(t)
			env := loadEnv(t, "prod")
			plan := planFor(t, st, env)
			tc.change(env)
			plan.Cluster = env.AWS.Cluster // a cluster name the plan would refuse is still the template's to check
			tmpl, err := infra.Render(env, plan)
			require.Error(t, err)
			assert.Nil(t, tmpl)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			for _, line := range strings.Split(err.Error(), "\n")[1:] {
				assert.Regexp(t, `^\.\./\.\./environments/prod\.yaml:\d+: [a-z_.\[\]0-9]+: `, line, "one problem a line: file:line: field: why")
			}
		})
	}
}

// TestRuleOrder: a rule comes before every rule that would take its requests, whatever the
// patterns' lengths; rules that would take each other's requests fail the render.
func TestRuleOrder(t *testing.T) {
	st := loadStack(t)
	for _, tc := range []struct {
		name     string
		patterns []string
		order    []string // services by rule priority
		problem  string
	}{
		{"nested prefix", []string{"/api/voices/*"}, []string{"voicevox", "backend", "frontend"}, ""},
		{"shorter but inside backend's", []string{"/api/v*"}, []string{"voicevox", "backend", "frontend"}, ""},
		// Neither takes the other's: the longer literal (voicevox's /version) goes first.
		{"apart from backend", []string{"/tts/*"}, []string{"voicevox", "backend", "frontend"}, ""},
		{"each takes the other's", []string{"/api/v*", "/h*"}, nil, "/health would be taken by voicevox's rule (/h*)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := loadEnv(t, "staging")
			vv := env.Services["voicevox"]
			vv.LoadBalancer = &environment.LoadBalancer{PathPatterns: tc.patterns}
			env.Services["voicevox"] = vv
			tmpl, err := infra.Render(env, planFor(t, st, env))
			if tc.problem != "" {
				require.ErrorContains(t, err, tc.problem)
				return
			}
			require.NoError(t, err)
			body, err := infra.TemplateJSON(tmpl)
			require.NoError(t, err)
			var d doc
			require.NoError(t, json.Unmarshal(body, &d))
			rules := d.ofType("AWS::ElasticLoadBalancingV2::ListenerRule")
			slices.SortFunc(rules, func(a, b string) int {
				return int(d.Resources[a].Properties["Priority"].(float64) - d.Resources[b].Properties["Priority"].(float64))
			})
			var got []string
			for _, id := range rules {
				got = append(got, strings.ToLower(strings.TrimPrefix(id, "Rule")))
			}
			assert.Equal(t, tc.order, got)
		})
	}
}

// TestEveryTaggableResourceIsTagged: cost reports and the budget split by environment, so
// every resource whose type takes tags carries vmctl:environment.
func TestEveryTaggableResourceIsTagged(t *testing.T) {
	env := loadEnv(t, "dev")
	env.AWS.Domain, env.AWS.HostedZoneID = "dev.vmapp.example.com", "Z0123456789ABCDEFGHIJ"
	d := renderDoc(t, env)
	tagFields := []string{"Tags", "FileSystemTags", "AccessPointTags", "ResourceTags"}
	tagged := 0
	for _, id := range slices.Sorted(maps.Keys(d.Resources)) {
		r := d.Resources[id]
		typ := reflect.TypeOf(cloudformation.AllResources()[r.Type])
		require.NotNil(t, typ, "%s: unknown type %s", id, r.Type)
		for _, field := range tagFields {
			if _, ok := typ.Elem().FieldByName(field); !ok {
				continue
			}
			tags, _ := json.Marshal(r.Properties[field])
			assert.Contains(t, string(tags), `"vmctl:environment"`, "%s (%s) has no %s tag in %s", id, r.Type, infra.TagEnvironment, field)
			assert.Contains(t, string(tags), `"dev"`, "%s (%s)", id, r.Type)
			tagged++
		}
	}
	assert.Greater(t, tagged, 40, "the walk found the taggable resources")
}

// TestRenderRefusesWhatItCannotBuild: inputs no loader would pass fail with an error, never
// a panic or a half template.
func TestRenderRefusesWhatItCannotBuild(t *testing.T) {
	st := loadStack(t)
	for _, tc := range []struct {
		name string
		make func(t *testing.T) (*environment.Environment, *ecs.Plan)
		want string
	}{
		{"no plan", func(t *testing.T) (*environment.Environment, *ecs.Plan) { return loadEnv(t, "dev"), nil }, "no environment or plan"},
		{"a local environment", func(t *testing.T) (*environment.Environment, *ecs.Plan) {
			local := loadEnv(t, "local")
			return local, planFor(t, st, loadEnv(t, "dev"))
		}, "only kind aws"},
		{"another environment's plan", func(t *testing.T) (*environment.Environment, *ecs.Plan) {
			return loadEnv(t, "dev"), planFor(t, st, loadEnv(t, "prod"))
		}, "the plan is of environment prod"},
		{"no subnets", func(t *testing.T) (*environment.Environment, *ecs.Plan) {
			env := loadEnv(t, "dev")
			plan := planFor(t, st, env)
			env.AWS.Network.Subnets = environment.Subnets{}
			return env, plan
		}, "aws.network.subnets.public: needs subnets in 2 availability zones, has 0"},
		{"nothing sized", func(t *testing.T) (*environment.Environment, *ecs.Plan) {
			env := loadEnv(t, "dev")
			plan := planFor(t, st, env)
			env.AWS.Stores = environment.Stores{EFS: env.AWS.Stores.EFS}
			env.AWS.Network.CIDR = ""
			return env, plan
		}, "aws.stores.postgres.instance_class"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, plan := tc.make(t)
			tmpl, err := infra.Render(env, plan)
			require.ErrorContains(t, err, tc.want)
			assert.Nil(t, tmpl)
		})
	}
}
