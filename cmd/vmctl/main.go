// Command vmctl runs the Video Message App locally on the Docker Engine and
// ships the same images to AWS. Everything lives in internal/cli.
package main

import (
	"os"

	"github.com/vmctl/vmctl/internal/cli"
)

func main() {
	os.Exit(cli.Main())
}
