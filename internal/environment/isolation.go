package environment

import (
	"fmt"
	"path/filepath"
)

// CheckAccountIsolation refuses env when it is not protected and shares its AWS account with
// a protected environment in dir (protected: true in its file, whatever its name). A dev
// file that points at prod's account would otherwise write to prod without prod's guards.
// Every environment in dir is loaded, and a file that does not load is an error, since it
// might be protected.
func CheckAccountIsolation(env *Environment, dir string) error {
	if env.Kind != KindAWS || env.AWS == nil || env.Protected {
		return nil
	}
	names, err := Names(dir)
	if err != nil {
		return fmt.Errorf("check %s's account against the other environments: %w", env.Name, err)
	}
	for _, name := range names {
		if name == env.Name {
			continue
		}
		other, err := Load(filepath.Join(dir, name+".yaml"))
		if err != nil {
			return fmt.Errorf("check %s's account against %s: %w", env.Name, name, err)
		}
		if other.Kind != KindAWS || other.AWS == nil || !other.Protected || other.AWS.AccountID != env.AWS.AccountID {
			continue
		}
		return &FieldError{File: env.File, Field: "aws.account_id", Reason: fmt.Sprintf(
			"%s is also the account of %s (%s), which is protected, and %s is not: give %s an account of its own",
			env.AWS.AccountID, other.Name, other.File, env.Name, env.Name)}
	}
	return nil
}
