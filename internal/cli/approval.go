package cli

import (
	"bufio"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	vmaws "github.com/vmctl/vmctl/internal/aws"
)

// approvalFlags are the flags of every command that writes into an environment; what
// they approve is decided in one place, vmaws.Approval.Require.
type approvalFlags struct {
	yes, approveProd bool
}

func (a *approvalFlags) register(fl *pflag.FlagSet) {
	fl.BoolVarP(&a.yes, "yes", "y", false, "approve without asking (CI)")
	fl.BoolVar(&a.approveProd, "approve-prod", false, "with --yes, approve a write into a protected environment (prod)")
}

// approval is the operator's answer source for one command: the flags, and the
// terminal when a person is at one. One prompter per command, so a second question
// reads on from where the first stopped.
func (f *Factory) approval(a approvalFlags) vmaws.Approval {
	ap := vmaws.Approval{Yes: a.yes, ApproveProtected: a.approveProd}
	if interactive(f.IO) {
		ap.Prompt = &linePrompter{in: bufio.NewReader(f.IO.In), out: f.IO.ErrOut}
	}
	return ap
}

// linePrompter asks on stderr and reads one line from stdin.
type linePrompter struct {
	in  *bufio.Reader
	out io.Writer
}

func (p *linePrompter) Ask(question string) (string, error) {
	fmt.Fprint(p.out, question)
	return p.in.ReadString('\n')
}
