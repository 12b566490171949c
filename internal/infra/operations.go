package infra

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/autoscaling"
	"github.com/awslabs/goformation/v7/cloudformation/budgets"
	"github.com/awslabs/goformation/v7/cloudformation/ce"
	"github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/policies"
	"github.com/awslabs/goformation/v7/cloudformation/scheduler"
	"github.com/awslabs/goformation/v7/cloudformation/sns"
)

// Seed §7.3's alarm thresholds.
const (
	errorRatePercent   = 5.0 // ALB 5xx share of requests …
	errorRateMinutes   = 5   // … sustained this long
	utilisationPercent = 80.0
	utilisationMinutes = 10
	// Seed §6.3: alert at 80 % of the budget spent and at 100 % forecast.
	budgetActualPercent   = 80.0
	budgetForecastPercent = 100.0
)

// logs are the environment's log groups as the plan names them (seed §7.2). Their names
// are fixed, so a group kept after its stack is gone would stop the stack from being
// created again: the app's logs go with the stack, the audit log stays only where the
// stack is never destroyed on purpose (a protected environment), as the record of what
// was decided there.
func (r *renderer) logs() {
	r.add(LogicalAppLogGroup, &logs.LogGroup{
		LogGroupName:                         cloudformation.String(r.plan.LogGroup.Name),
		RetentionInDays:                      cloudformation.Int(r.plan.LogGroup.RetentionDays),
		AWSCloudFormationDeletionPolicy:      "Delete",
		AWSCloudFormationUpdateReplacePolicy: "Delete",
	})
	keep := policies.DeletionPolicy("Delete")
	if r.env.Protected {
		keep = retain
	}
	r.add(LogicalAuditLogGroup, &logs.LogGroup{
		LogGroupName:                         cloudformation.String(r.plan.AuditLogGroup.Name),
		RetentionInDays:                      cloudformation.Int(r.plan.AuditLogGroup.RetentionDays),
		AWSCloudFormationDeletionPolicy:      keep,
		AWSCloudFormationUpdateReplacePolicy: policies.UpdateReplacePolicy(keep),
	})
}

// topic is where alarms, budget alerts and cost anomalies go (seed §7.3): an SNS topic,
// encrypted with the key, with the subscriptions the file lists.
func (r *renderer) topic() {
	r.add(LogicalAlarmTopic, &sns.Topic{
		TopicName:      cloudformation.String(r.name("alarms")),
		DisplayName:    cloudformation.String("vmctl " + r.env.Name),
		KmsMasterKeyId: cloudformation.RefPtr(LogicalDataKey),
	})
	topic := cloudformation.Ref(LogicalAlarmTopic)
	for i, n := range r.aws.Alarms.Notify {
		protocol := "email"
		if strings.HasPrefix(n, "https://") {
			protocol = "https"
		}
		r.add(fmt.Sprintf("AlarmSubscription%d", i+1), &sns.Subscription{TopicArn: topic, Protocol: protocol, Endpoint: cloudformation.String(n)})
	}
	r.add("AlarmTopicPolicy", &sns.TopicPolicy{
		Topics: []string{topic},
		PolicyDocument: policy(map[string]interface{}{
			"Sid": "Publishers", "Effect": "Allow",
			"Principal": map[string]interface{}{"Service": []string{"budgets.amazonaws.com", "cloudwatch.amazonaws.com", "costalerts.amazonaws.com"}},
			"Action":    "sns:Publish", "Resource": topic,
			"Condition": map[string]interface{}{"StringEquals": map[string]interface{}{"aws:SourceAccount": cloudformation.Ref("AWS::AccountId")}},
		}),
	})
	r.output(OutAlarmTopic, topic)
}

// alarms are seed §7.3's: the ALB's 5xx rate above 5 % for 5 minutes, and each service's
// CPU or memory above 80 % for 10 minutes; and a dashboard of the same.
func (r *renderer) alarms() {
	topic := []string{cloudformation.Ref(LogicalAlarmTopic)}
	lbDim := []cloudwatch.Alarm_Dimension{{Name: "LoadBalancer", Value: cloudformation.GetAtt(LogicalLoadBalancer, "LoadBalancerFullName")}}
	metric := func(id, name string) cloudwatch.Alarm_MetricDataQuery {
		return cloudwatch.Alarm_MetricDataQuery{Id: id, ReturnData: cloudformation.Bool(false), MetricStat: &cloudwatch.Alarm_MetricStat{
			Metric: &cloudwatch.Alarm_Metric{Namespace: cloudformation.String("AWS/ApplicationELB"), MetricName: cloudformation.String(name), Dimensions: lbDim},
			Period: 60, Stat: "Sum",
		}}
	}
	r.add("AlarmErrorRate", &cloudwatch.Alarm{
		AlarmName:        cloudformation.String(r.name("5xx-rate")),
		AlarmDescription: cloudformation.String(fmt.Sprintf("More than %g %% of requests end in a 5xx from the services, for %d minutes (seed §7.3)", errorRatePercent, errorRateMinutes)),
		Metrics: []cloudwatch.Alarm_MetricDataQuery{
			metric("errors", "HTTPCode_Target_5XX_Count"),
			metric("requests", "RequestCount"),
			{Id: "rate", Label: cloudformation.String("5xx %"), Expression: cloudformation.String("IF(requests > 0, 100 * errors / requests, 0)"), ReturnData: cloudformation.Bool(true)},
		},
		ComparisonOperator: "GreaterThanThreshold",
		Threshold:          cloudformation.Float64(errorRatePercent),
		EvaluationPeriods:  errorRateMinutes,
		DatapointsToAlarm:  cloudformation.Int(errorRateMinutes),
		TreatMissingData:   cloudformation.String("notBreaching"), // no requests, no errors
		AlarmActions:       topic,
		OKActions:          topic,
	})
	for _, name := range slices.Sorted(maps.Keys(r.services)) {
		for _, m := range []struct{ metric, suffix string }{{"CPUUtilization", "cpu"}, {"MemoryUtilization", "memory"}} {
			r.add("Alarm"+camel(name)+camel(m.suffix), &cloudwatch.Alarm{
				AlarmName:        cloudformation.String(r.name(name + "-" + m.suffix)),
				AlarmDescription: cloudformation.String(fmt.Sprintf("%s's %s above %g %% for %d minutes (seed §7.3)", name, m.metric, utilisationPercent, utilisationMinutes)),
				Namespace:        cloudformation.String("AWS/ECS"),
				MetricName:       cloudformation.String(m.metric),
				Dimensions: []cloudwatch.Alarm_Dimension{
					{Name: "ClusterName", Value: r.plan.Cluster},
					{Name: "ServiceName", Value: name},
				},
				Statistic:          cloudformation.String("Average"),
				Period:             cloudformation.Int(60),
				EvaluationPeriods:  utilisationMinutes,
				DatapointsToAlarm:  cloudformation.Int(utilisationMinutes),
				Threshold:          cloudformation.Float64(utilisationPercent),
				ComparisonOperator: "GreaterThanThreshold",
				TreatMissingData:   cloudformation.String("notBreaching"), // stopped out of hours is not overloaded
				AlarmActions:       topic,
				OKActions:          topic,
			})
		}
	}
	r.dashboard()
}

// dashboard shows what the alarms watch: traffic and errors at the ALB, and each
// service's CPU and memory.
func (r *renderer) dashboard() {
	lb := "${" + LogicalLoadBalancer + ".LoadBalancerFullName}"
	widget := func(x, y int, title string, metrics [][]interface{}) map[string]interface{} {
		return map[string]interface{}{
			"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
			"properties": map[string]interface{}{"title": title, "region": "${AWS::Region}", "view": "timeSeries", "stat": "Sum", "period": 60, "metrics": metrics},
		}
	}
	widgets := []interface{}{
		widget(0, 0, "Requests and 5xx", [][]interface{}{
			{"AWS/ApplicationELB", "RequestCount", "LoadBalancer", lb},
			{"AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", lb},
			{"AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", lb},
		}),
		widget(12, 0, "Response time (p95)", [][]interface{}{
			{"AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", lb, map[string]interface{}{"stat": "p95"}},
		}),
	}
	var cpu, mem [][]interface{}
	for _, name := range slices.Sorted(maps.Keys(r.services)) {
		cpu = append(cpu, []interface{}{"AWS/ECS", "CPUUtilization", "ClusterName", r.plan.Cluster, "ServiceName", name, map[string]interface{}{"stat": "Average"}})
		mem = append(mem, []interface{}{"AWS/ECS", "MemoryUtilization", "ClusterName", r.plan.Cluster, "ServiceName", name, map[string]interface{}{"stat": "Average"}})
	}
	if len(cpu) > 0 {
		widgets = append(widgets, widget(0, 6, "CPU % by service", cpu), widget(12, 6, "Memory % by service", mem))
	}
	body, _ := json.Marshal(map[string]interface{}{"widgets": widgets}) // plain maps and strings: cannot fail
	r.add("Dashboard", &cloudwatch.Dashboard{
		DashboardName: cloudformation.String(r.name("overview")),
		DashboardBody: cloudformation.Sub(string(body)),
	})
}

// budget is seed §6.3: a monthly cost budget with alerts at 80 % spent and 100 % forecast,
// and a cost anomaly monitor that alerts on an anomaly this far above the expected spend.
func (r *renderer) budget() {
	b := r.aws.Budget
	if b == nil || b.MonthlyUSD <= 0 {
		return // reported by check
	}
	subscribers := []budgets.Budget_Subscriber{{SubscriptionType: "SNS", Address: cloudformation.Ref(LogicalAlarmTopic)}}
	notify := func(kind string, percent float64) budgets.Budget_NotificationWithSubscribers {
		return budgets.Budget_NotificationWithSubscribers{
			Notification: &budgets.Budget_Notification{NotificationType: kind, ComparisonOperator: "GREATER_THAN", Threshold: percent, ThresholdType: cloudformation.String("PERCENTAGE")},
			Subscribers:  subscribers,
		}
	}
	r.add("Budget", &budgets.Budget{
		Budget: &budgets.Budget_BudgetData{
			BudgetName:  cloudformation.String(r.name("monthly")),
			BudgetType:  "COST",
			TimeUnit:    "MONTHLY",
			BudgetLimit: &budgets.Budget_Spend{Amount: float64(b.MonthlyUSD), Unit: "USD"},
		},
		NotificationsWithSubscribers: []budgets.Budget_NotificationWithSubscribers{
			notify("ACTUAL", budgetActualPercent),
			notify("FORECASTED", budgetForecastPercent),
		},
	})
	r.add("CostAnomalyMonitor", &ce.AnomalyMonitor{
		MonitorName:      r.name("services"),
		MonitorType:      "DIMENSIONAL",
		MonitorDimension: cloudformation.String("SERVICE"),
		ResourceTags:     []ce.AnomalyMonitor_ResourceTag{{Key: TagEnvironment, Value: r.env.Name}},
	})
	threshold, _ := json.Marshal(map[string]interface{}{"Dimensions": map[string]interface{}{
		"Key": "ANOMALY_TOTAL_IMPACT_PERCENTAGE", "MatchOptions": []string{"GREATER_THAN_OR_EQUAL"}, "Values": []string{strconv.Itoa(b.AnomalyPercent)},
	}})
	r.add("CostAnomalySubscription", &ce.AnomalySubscription{
		SubscriptionName:    r.name("anomalies"),
		Frequency:           "IMMEDIATE", // what SNS subscribers take
		MonitorArnList:      []string{cloudformation.Ref("CostAnomalyMonitor")},
		Subscribers:         []ce.AnomalySubscription_Subscriber{{Type: "SNS", Address: cloudformation.Ref(LogicalAlarmTopic)}},
		ThresholdExpression: cloudformation.String(string(threshold)),
		ResourceTags:        []ce.AnomalySubscription_ResourceTag{{Key: TagEnvironment, Value: r.env.Name}},
	})
}

// schedule stops what costs by the hour outside the environment's working hours (seed
// §6.1): the GPU hosts (scheduled actions to 0 and back; the ECS services have their own
// in the plan) and the database (EventBridge Scheduler calling RDS).
func (r *renderer) schedule() {
	s := r.aws.Schedule
	if s == nil {
		return
	}
	hour := func(at string) (string, string) {
		hh, mm, _ := strings.Cut(at, ":")
		return trimZero(mm), trimZero(hh)
	}
	if _, h := r.gpuHosts(); h != nil {
		days := make([]string, len(s.Days))
		for i, d := range s.Days {
			days[i] = strconv.Itoa(weekday(d)) // cron's 0–6 from Sunday
		}
		for _, a := range []struct {
			id, at   string
			min, max int
		}{{"GpuScheduleStart", s.Start, h.Min, h.Max}, {"GpuScheduleStop", s.Stop, 0, 0}} {
			mm, hh := hour(a.at)
			act := &autoscaling.ScheduledAction{
				AutoScalingGroupName: cloudformation.Ref(LogicalGPUAutoScalingGroup),
				Recurrence:           cloudformation.String(fmt.Sprintf("%s %s * * %s", mm, hh, strings.Join(days, ","))),
				TimeZone:             cloudformation.String(s.TimeZone),
				MinSize:              cloudformation.Int(a.min),
				MaxSize:              cloudformation.Int(a.max),
			}
			if a.max == 0 {
				act.DesiredCapacity = cloudformation.Int(0)
			}
			r.add(a.id, act)
		}
	}
	if r.aws.Stores.Postgres.Endpoint != "" {
		return // the database is not the stack's to stop
	}
	dbArn := cloudformation.Sub("arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:${" + LogicalDatabase + "}")
	r.add("DatabaseSchedulerRole", &iam.Role{
		Description:              cloudformation.String("EventBridge Scheduler stops and starts the database of " + r.env.Name + " out of hours"),
		AssumeRolePolicyDocument: assumeRole("scheduler.amazonaws.com"),
		Policies: []iam.Role_Policy{{PolicyName: "stop-start", PolicyDocument: policy(
			statement([]string{"rds:StopDBInstance", "rds:StartDBInstance"}, dbArn),
		)}},
	})
	days := strings.ToUpper(strings.Join(s.Days, ","))
	for _, a := range []struct{ id, at, call string }{{"DatabaseScheduleStart", s.Start, "startDBInstance"}, {"DatabaseScheduleStop", s.Stop, "stopDBInstance"}} {
		mm, hh := hour(a.at)
		r.add(a.id, &scheduler.Schedule{
			Description:                cloudformation.String(a.call + " for " + r.env.Name + "'s working hours"),
			ScheduleExpression:         fmt.Sprintf("cron(%s %s ? * %s *)", mm, hh, days),
			ScheduleExpressionTimezone: cloudformation.String(s.TimeZone),
			FlexibleTimeWindow:         &scheduler.Schedule_FlexibleTimeWindow{Mode: "OFF"},
			Target: &scheduler.Schedule_Target{
				Arn:     "arn:aws:scheduler:::aws-sdk:rds:" + a.call,
				RoleArn: cloudformation.GetAtt("DatabaseSchedulerRole", "Arn"),
				Input:   cloudformation.SubPtr(`{"DbInstanceIdentifier":"${` + LogicalDatabase + `}"}`),
			},
		})
	}
}

func weekday(d string) int {
	return slices.Index([]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}, d)
}

func trimZero(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}
