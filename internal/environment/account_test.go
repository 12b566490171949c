package environment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecretsAndRegistryAreInTheEnvironmentsAccount(t *testing.T) {
	const dbURL = "arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:vmctl/dev/database-url"
	const apiKey = "arn:aws:ssm:ap-northeast-1:111111111111:parameter/vmctl/dev/d-id-api-key"
	const registry = "registry: 111111111111.dkr.ecr.ap-northeast-1.amazonaws.com"
	tests := []struct {
		name, old, new string
		field, reason  string // "" when it loads
	}{
		{"a Secrets Manager secret of another account", dbURL, strings.Replace(dbURL, "111111111111", "333333333333", 1),
			"services.backend.secrets.DATABASE_URL", "the secret is in account 333333333333, not in aws.account_id 111111111111"},
		{"an SSM parameter of another account", apiKey, strings.Replace(apiKey, "111111111111", "333333333333", 1),
			"services.backend.secrets.D_ID_API_KEY", "the secret is in account 333333333333, not in aws.account_id 111111111111"},
		{"a secret in another region", dbURL, strings.Replace(dbURL, "ap-northeast-1", "us-east-1", 1),
			"services.backend.secrets.DATABASE_URL", "the secret is in region us-east-1, not in aws.region ap-northeast-1"},
		{"another account's registry", registry, "registry: 333333333333.dkr.ecr.ap-northeast-1.amazonaws.com",
			"aws.registry", "the registry is in account 333333333333, not in aws.account_id 111111111111"},
		{"a registry in another region", registry, "registry: 111111111111.dkr.ecr.us-west-2.amazonaws.com",
			"aws.registry", "the registry is in region us-west-2, not in aws.region ap-northeast-1"},
		{"a registry that is not ECR", registry, "registry: registry.example:5000", "", ""},
		{"its own account and region", dbURL, dbURL, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, base, tt.old, tt.new)
			path := write(t, doc)
			_, err := Load(path)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			fes := fieldErrors(t, err)
			require.Len(t, fes, 1, err.Error())
			assert.Equal(t, path, fes[0].File)
			assert.Equal(t, tt.field, fes[0].Field)
			assert.Contains(t, fes[0].Reason, tt.reason)
			assert.Equal(t, lineOf(t, doc, tt.new), fes[0].Line)
		})
	}
}

func TestCheckAccountIsolation(t *testing.T) {
	inAccount := func(account string) string { return strings.ReplaceAll(base, "111111111111", account) }
	protectedIn := func(account string) string {
		doc := strings.Replace(inAccount(account), "kind: aws\n", "kind: aws\nprotected: true\n", 1)
		return strings.Replace(doc, "auto: true", "auto: false", 1)
	}
	dir := t.TempDir()
	for name, doc := range map[string]string{
		"prod":    protectedIn("333333333333"),
		"staging": protectedIn("222222222222"),
		"qa":      inAccount("444444444444"),
		"prod-us": inAccount("555555555555"), // named like prod, but its file does not protect it
		"local":   localBase,
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o600))
	}
	tests := []struct {
		name, file, doc string
		want            string // "" when allowed
	}{
		{"its own account", "dev", inAccount("111111111111"), ""},
		{"prod's account", "dev", inAccount("333333333333"),
			"aws.account_id: 333333333333 is also the account of prod (" + filepath.Join(dir, "prod.yaml") + "), which is protected, and dev is not: give dev an account of its own"},
		{"a protected environment's account", "dev", inAccount("222222222222"),
			"aws.account_id: 222222222222 is also the account of staging"},
		{"an unprotected environment's account", "dev", inAccount("444444444444"), ""},
		{"the account of a file named like prod that is not protected", "dev", inAccount("555555555555"), ""},
		{"a protected environment with prod's account", "dr", protectedIn("333333333333"), ""},
		{"a local environment", "local", localBase, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The file lives in a copy of dir, so it is checked against the others, not itself.
			own := copyDir(t, dir)
			path := filepath.Join(own, tt.file+".yaml")
			require.NoError(t, os.WriteFile(path, []byte(tt.doc), 0o600))
			env, err := Load(path)
			require.NoError(t, err)
			err = CheckAccountIsolation(env, own)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			want := strings.ReplaceAll(tt.want, dir, own)
			require.ErrorContains(t, err, path+": "+want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}

	t.Run("a file that does not load", func(t *testing.T) {
		own := copyDir(t, dir)
		require.NoError(t, os.WriteFile(filepath.Join(own, "prod.yaml"), []byte("kind: [\n"), 0o600))
		path := filepath.Join(own, "dev.yaml")
		require.NoError(t, os.WriteFile(path, []byte(inAccount("111111111111")), 0o600))
		env, err := Load(path)
		require.NoError(t, err)
		require.ErrorContains(t, CheckAccountIsolation(env, own), "check dev's account against prod: "+filepath.Join(own, "prod.yaml"))
	})
}

func copyDir(t *testing.T, dir string) string {
	t.Helper()
	own := t.TempDir()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(own, e.Name()), b, 0o600))
	}
	return own
}
