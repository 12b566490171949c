package infra_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/infra"
)

// Prod deploys blue/green: ECS rewrites its production rules at each deploy, so a change
// set that would rewrite one again is refused unless it is named; rolling staging's are
// the template's to change.
func TestBlueGreenRulesAreNotResetSilently(t *testing.T) {
	assert.Equal(t, []string{"RuleBackend", "RuleFrontend"}, infra.ShiftedRules(loadEnv(t, "prod")))
	assert.Empty(t, infra.ShiftedRules(loadEnv(t, "staging")))

	cs := &infra.ChangeSet{Env: "prod", Stack: "vmctl-prod", Changes: []infra.Change{
		{Action: infra.ActionModify, LogicalID: "RuleBackend", Type: "AWS::ElasticLoadBalancingV2::ListenerRule"},
		{Action: infra.ActionModify, LogicalID: "GpuAutoScalingGroup", Type: "AWS::AutoScaling::AutoScalingGroup"},
		{Action: infra.ActionAdd, LogicalID: "RuleFrontend", Type: "AWS::ElasticLoadBalancingV2::ListenerRule"},
	}}
	rules := infra.ShiftedRules(loadEnv(t, "prod"))
	err := cs.RefuseRuleReset(rules, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refused to change stack vmctl-prod: the change set would modify RuleBackend, a listener rule ECS blue/green shifts")
	assert.Contains(t, err.Error(), "run vmctl infra apply --env prod --allow-replace RuleBackend")
	assert.NotContains(t, err.Error(), "RuleFrontend", "a new rule resets nothing")
	assert.NoError(t, cs.RefuseRuleReset(rules, []string{"RuleBackend"}))
	assert.NoError(t, cs.RefuseRuleReset(infra.ShiftedRules(loadEnv(t, "staging")), nil))
}
