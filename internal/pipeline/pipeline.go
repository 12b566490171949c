// Package pipeline renders the release pipeline of seed §5.3 as a CI workflow:
// every merge ships a release to the environment marked deployment.auto (dev),
// then promotes the same digests along the chain (staging, then prod), each
// promotion behind the CI system's own approval gate, each job verified.
//
// The pipeline comes from the environment files alone: which one is auto,
// which are protected, their accounts and regions. The CI system's side
// (GitHub Actions today) is one renderer over that model; vmctl ci github
// writes its output into the app's repository.
package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vmctl/vmctl/internal/environment"
)

// Pipeline is the order releases travel in: shipped to Ship, then promoted
// through Promotions in turn.
type Pipeline struct {
	Ship       *environment.Environment
	Promotions []Promotion
}

// Promotion moves the release From one environment To the next.
type Promotion struct {
	From, To *environment.Environment
}

// ErrNoAuto says no environment takes releases without a person, so a
// pipeline has nowhere to ship to.
var ErrNoAuto = errors.New("no environment has deployment.auto: true")

// jobName is what an environment's name must look like to name a CI job, a
// GitHub environment and an AWS profile without quoting.
var jobName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// New orders the AWS environments among envs into a pipeline. The one with
// deployment.auto comes first; the others follow it as a promotion chain,
// unprotected before protected and, among those, rolling before blue/green
// (the production strategy), then by name. With the shipped files that is
// dev, staging, prod.
func New(envs []*environment.Environment) (*Pipeline, error) {
	var auto, rest []*environment.Environment
	for _, e := range envs {
		if e.Kind != environment.KindAWS || e.AWS == nil {
			continue
		}
		if !jobName.MatchString(e.Name) || e.Name == ShipJob {
			return nil, fmt.Errorf("environment name %q cannot name a CI job: rename %s to letters, digits, - and _ (and not %q)", e.Name, e.File, ShipJob)
		}
		if e.AWS.Deployment.Auto {
			auto = append(auto, e)
		} else {
			rest = append(rest, e)
		}
	}
	switch len(auto) {
	case 0:
		return nil, fmt.Errorf("%w: a pipeline ships each merge to that environment first; set it in dev's file", ErrNoAuto)
	case 1:
	default:
		names := make([]string, len(auto))
		for i, e := range auto {
			names[i] = e.Name
		}
		return nil, fmt.Errorf("%s all have deployment.auto: true: a pipeline promotes from one of them; keep auto in one file", strings.Join(names, ", "))
	}
	slices.SortStableFunc(rest, func(a, b *environment.Environment) int {
		return cmp.Or(
			cmp.Compare(rank(a.Protected), rank(b.Protected)),
			cmp.Compare(rank(a.AWS.Deployment.Strategy == environment.StrategyBlueGreen), rank(b.AWS.Deployment.Strategy == environment.StrategyBlueGreen)),
			strings.Compare(a.Name, b.Name),
		)
	})
	p := &Pipeline{Ship: auto[0]}
	from := auto[0]
	for _, to := range rest {
		p.Promotions = append(p.Promotions, Promotion{From: from, To: to})
		from = to
	}
	return p, nil
}

func rank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Environments lists the pipeline's environments in release order.
func (p *Pipeline) Environments() []*environment.Environment {
	out := []*environment.Environment{p.Ship}
	for _, pr := range p.Promotions {
		out = append(out, pr.To)
	}
	return out
}

// Environment is the pipeline's environment of that name, or nil.
func (p *Pipeline) Environment(name string) *environment.Environment {
	for _, e := range p.Environments() {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// RoleVariable is the CI variable that holds the ARN of the role the
// pipeline assumes in env's account, e.g. VMCTL_DEV_ROLE_ARN.
func RoleVariable(env string) string {
	return "VMCTL_" + strings.ToUpper(strings.ReplaceAll(env, "-", "_")) + "_ROLE_ARN"
}

// Profile is the AWS profile a job writes env's credentials to: the one the
// environment file names, so vmctl finds it with no flag, else vmctl-<env>.
func Profile(env *environment.Environment) string {
	if env.AWS.Profile != "" {
		return env.AWS.Profile
	}
	return "vmctl-" + env.Name
}

var roleARN = regexp.MustCompile(`^arn:aws(?:-cn|-us-gov)?:iam::(\d{12}):role/[\w+=,.@/-]+$`)

// CheckRoleARN says whether arn is an IAM role in env's account: a role
// elsewhere would fail vmctl's account check only once the pipeline runs.
func CheckRoleARN(env *environment.Environment, arn string) error {
	m := roleARN.FindStringSubmatch(arn)
	if m == nil {
		return fmt.Errorf("role %q for %s is not an IAM role ARN: give arn:aws:iam::ACCOUNT:role/NAME", arn, env.Name)
	}
	if m[1] != env.AWS.AccountID {
		return fmt.Errorf("role %s is in account %s, but %s is account %s (%s): give a role in %s's account", arn, m[1], env.Name, env.AWS.AccountID, env.File, env.Name)
	}
	return nil
}
