package aws

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/environment"
)

// typed answers one line and remembers the question.
type typed struct {
	answer, asked string
}

func (p *typed) Ask(q string) (string, error) {
	p.asked = q
	if p.answer == "" {
		return "", errors.New("EOF")
	}
	return p.answer, nil
}

func env(name string, protected, approvalRequired bool) *environment.Environment {
	return &environment.Environment{Name: name, Protected: protected, AWS: &environment.AWS{Deployment: environment.Deployment{ApprovalRequired: approvalRequired}}}
}

// Protection comes from the file, not the name: prod-us protected by its file is
// asked like prod, a file called prod without the flag is not, and approval_required:
// false turns nothing off in a protected environment.
func TestApprovalPolicy(t *testing.T) {
	prod := env("prod", true, true)
	prodUS := env("prod-us", true, false) // approval_required: false does not switch protection off
	namedProd := env("prod", false, false)
	gated := env("qa", false, true)
	tests := []struct {
		name     string
		env      *environment.Environment
		ap       Approval
		answer   string
		want     string // "" approves
		askedHas string
	}{
		{name: "unprotected, ungated: nothing asked", env: namedProd},
		{name: "gated --yes", env: gated, ap: Approval{Yes: true}},
		{name: "gated in CI", env: gated, want: "deploy r to qa: not approved: qa requires approval: pass --yes (CI), or run it on a terminal to confirm; nothing was changed"},
		{name: "gated y on a terminal", env: gated, answer: "y\n", askedHas: "Deploy r to qa? [y/N] "},
		{name: "gated refused", env: gated, answer: "n\n", want: "deploy r to qa: not approved; nothing was changed in qa"},
		{name: "protected --yes alone", env: prod, ap: Approval{Yes: true}, want: "deploy r to prod: not approved: prod is protected: --yes needs --approve-prod as well, or run it on a terminal to confirm; nothing was changed"},
		{name: "protected --approve-prod alone", env: prod, ap: Approval{ApproveProtected: true}, want: "deploy r to prod: not approved: prod is protected: pass --yes --approve-prod, or run it on a terminal to confirm; nothing was changed"},
		{name: "protected --yes --approve-prod", env: prod, ap: Approval{Yes: true, ApproveProtected: true}},
		{name: "protected by file, approval_required false", env: prodUS, ap: Approval{Yes: true}, want: "deploy r to prod-us: not approved: prod-us is protected: --yes needs --approve-prod as well, or run it on a terminal to confirm; nothing was changed"},
		{name: "protected, name typed", env: prodUS, answer: "prod-us\n", askedHas: `Deploy r to prod-us? prod-us is protected: type "prod-us" to confirm: `},
		{name: "protected, y is not enough", env: prod, answer: "y\n", want: `deploy r to prod: not approved: the answer was not "prod"; nothing was changed in prod`},
		{name: "protected, end of input", env: prod, answer: "", want: `deploy r to prod: not approved: the answer was not "prod"; nothing was changed in prod`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap := tt.ap
			var p *typed
			if tt.answer != "" || strings.Contains(tt.name, "end of input") {
				p = &typed{answer: tt.answer}
				ap.Prompt = p
			}
			err := ap.Require(tt.env, "deploy r to "+tt.env.Name)
			if tt.want == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, tt.want)
				assert.ErrorIs(t, err, ErrNotApproved)
			}
			if tt.askedHas != "" {
				assert.Equal(t, tt.askedHas, p.asked)
			}
		})
	}
}
