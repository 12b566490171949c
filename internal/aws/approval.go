package aws

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmctl/vmctl/internal/environment"
)

// ErrNotApproved is wrapped by every refusal of Approval.Require, so callers and
// tests can tell "nobody said yes" from a failure.
var ErrNotApproved = errors.New("not approved")

// Prompter asks a person one question and returns the line they typed.
type Prompter interface {
	Ask(question string) (string, error)
}

// Approval is what the operator said for one command: the flags, and a person
// who can be asked when there is one (nil in CI or when stdin is not a terminal).
type Approval struct {
	Yes              bool // --yes: CI's approval
	ApproveProtected bool // --approve-prod: with --yes, approves a write into a protected environment
	Prompt           Prompter
}

// Require is the one approval policy, asked by every command before it writes
// into an environment (push, deploy, promote, rollback, infra apply, verify's
// probe task); action says what will be written, e.g. "deploy release R to prod".
//
//   - A protected environment (protected: true in its file) always needs explicit
//     approval: --yes with --approve-prod, or its name typed on a terminal.
//     Nothing in the file turns that off, approval_required: false included.
//   - Otherwise approval_required asks for --yes, or y on a terminal.
//   - Otherwise nothing is asked.
func (a Approval) Require(env *environment.Environment, action string) error {
	switch {
	case env.Protected:
		if a.Yes && a.ApproveProtected {
			return nil
		}
		if a.Prompt == nil {
			how := "pass --yes --approve-prod"
			if a.Yes {
				how = "--yes needs --approve-prod as well"
			}
			return fmt.Errorf("%s: %w: %s is protected: %s, or run it on a terminal to confirm; nothing was changed", action, ErrNotApproved, env.Name, how)
		}
		answer, err := a.Prompt.Ask(fmt.Sprintf("%s? %s is protected: type %q to confirm: ", capitalize(action), env.Name, env.Name))
		if err != nil || strings.TrimSpace(answer) != env.Name {
			return fmt.Errorf("%s: %w: the answer was not %q; nothing was changed in %s", action, ErrNotApproved, env.Name, env.Name)
		}
		return nil
	case env.AWS != nil && env.AWS.Deployment.ApprovalRequired:
		if a.Yes {
			return nil
		}
		if a.Prompt == nil {
			return fmt.Errorf("%s: %w: %s requires approval: pass --yes (CI), or run it on a terminal to confirm; nothing was changed", action, ErrNotApproved, env.Name)
		}
		answer, err := a.Prompt.Ask(capitalize(action) + "? [y/N] ")
		if ans := strings.ToLower(strings.TrimSpace(answer)); err != nil || (ans != "y" && ans != "yes") {
			return fmt.Errorf("%s: %w; nothing was changed in %s", action, ErrNotApproved, env.Name)
		}
	}
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
