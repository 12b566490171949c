package ecs_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/ecs"
	"github.com/vmctl/vmctl/internal/environment"
)

const secretARN = "arn:aws:ssm:ap-northeast-1:333333333333:parameter/fx/db-pass"

// declare gives app's environment entry plain variables and secrets.
func declare(plain, secrets map[string]string) func(*environment.Environment) {
	return func(e *environment.Environment) {
		s := e.Services["app"]
		s.Environment, s.Secrets = plain, secrets
		e.Services["app"] = s
	}
}

// A value interpolated from the operator's shell or a .env file reaches a task definition
// only as a declared secret reference or as the environment file's own plain value.
func TestInterpolatedValues(t *testing.T) {
	const head = "services:\n  app:\n    image: x\n    ports: [\"8080\"]\n"
	shell := map[string]string{"DB_PASS": "hunter2", "TOKEN": "hunter2", "WORKERS": "3", "SRC": "/src"}
	tests := []struct {
		name  string
		fx    fixture
		check func(t *testing.T, p *ecs.Plan)
		want  []string // fragments of the one error; none when it renders
	}{
		{name: "a literal value is plain",
			fx: fixture{compose: head + "    environment: {LOG_LEVEL: debug}\n"},
			check: func(t *testing.T, p *ecs.Plan) {
				assert.Equal(t, map[string]string{"LOG_LEVEL": "debug"}, envMap(container(only(t, p, "app"), "app")))
			}},
		{name: "$$ is a literal dollar, not interpolation",
			fx: fixture{compose: head + "    environment: {PRICE: \"$$DB_PASS\"}\n    command: [sh, -c, \"exec serve --token $$TOKEN\"]\n"},
			check: func(t *testing.T, p *ecs.Plan) {
				c := container(only(t, p, "app"), "app")
				assert.Equal(t, "$DB_PASS", envMap(c)["PRICE"])
				assert.Equal(t, []string{"sh", "-c", "exec serve --token $TOKEN"}, c.Command)
			}},
		{name: "a variable interpolated from the shell is refused",
			fx:   fixture{compose: head + "    environment: {DB_PASS: \"${DB_PASS}\"}\n"},
			want: []string{"service app: environment.DB_PASS: its value comes from ${DB_PASS}", "declare it under services.app.secrets in prod.yaml", "set it in services.app.environment there"}},
		{name: "a default is still interpolation",
			fx:   fixture{compose: head + "    environment: {VERSION: \"${VERSION:-1.0}\"}\n"},
			want: []string{"service app: environment.VERSION: its value comes from ${VERSION}"}},
		{name: "a value from a .env file is refused",
			fx:   fixture{compose: head + "    environment: {VERSION: \"v${VERSION}\"}\n", files: map[string]string{".env": "VERSION=2\n"}},
			want: []string{"service app: environment.VERSION: its value comes from ${VERSION}"}},
		{name: "a bare name inherits from the shell and is refused",
			fx:   fixture{compose: head + "    environment: [DB_PASS]\n"},
			want: []string{"service app: environment.DB_PASS: its value comes from ${DB_PASS}"}},
		{name: "a value from an env_file is refused",
			fx:   fixture{compose: head + "    env_file: app.env\n", files: map[string]string{"app.env": "DB_PASS=hunter2\n"}},
			want: []string{"service app: environment.DB_PASS: its value comes from ${DB_PASS}"}},
		{name: "declared plain in the environment file, its value is the file's",
			fx: fixture{compose: head + "    environment: {DB_HOST: \"${DB_HOST}\"}\n", shell: map[string]string{"DB_HOST": "laptop"},
				edit: declare(map[string]string{"DB_HOST": "db.internal"}, nil)},
			check: func(t *testing.T, p *ecs.Plan) {
				assert.Equal(t, "db.internal", envMap(container(only(t, p, "app"), "app"))["DB_HOST"])
			}},
		{name: "declared secret, it becomes a reference",
			fx: fixture{compose: head + "    environment: {DB_PASS: \"${DB_PASS}\"}\n",
				edit: declare(nil, map[string]string{"DB_PASS": secretARN})},
			check: func(t *testing.T, p *ecs.Plan) {
				c := container(only(t, p, "app"), "app")
				assert.NotContains(t, envMap(c), "DB_PASS")
				require.Len(t, c.Secrets, 1)
				assert.Equal(t, [2]string{"DB_PASS", secretARN}, [2]string{*c.Secrets[0].Name, *c.Secrets[0].ValueFrom})
			}},
		{name: "interpolated in the command",
			fx:   fixture{compose: head + "    command: [serve, --token, \"${TOKEN}\"]\n"},
			want: []string{"service app: command: interpolates ${TOKEN} from the operator's environment", "set it in services.app.environment in prod.yaml", "$$TOKEN"}},
		{name: "interpolated in the entrypoint",
			fx:   fixture{compose: head + "    entrypoint: \"run --token $TOKEN\"\n"},
			want: []string{"service app: entrypoint: interpolates ${TOKEN}"}},
		{name: "interpolated in the health check",
			fx:   fixture{compose: head + "    healthcheck:\n      test: \"curl -H 'Authorization: ${TOKEN}' localhost:8080\"\n"},
			want: []string{"service app: healthcheck.test: interpolates ${TOKEN}"}},
		{name: "interpolated in a label",
			fx:   fixture{compose: head + "    labels: [\"owner=${USER_NAME:-me}\"]\n"},
			want: []string{"service app: labels: interpolates ${USER_NAME}"}},
		{name: "a declared secret in the command is still refused",
			fx: fixture{compose: head + "    command: [serve, --token, \"${TOKEN}\"]\n",
				edit: declare(nil, map[string]string{"TOKEN": secretARN})},
			want: []string{"service app: command: reads the secret ${TOKEN}", "$$TOKEN in a shell command"}},
		{name: "declared plain, the command takes the file's value",
			fx: fixture{compose: head + "    command: [serve, --workers, \"${WORKERS:-2}\"]\n    healthcheck:\n      test: \"check --workers ${WORKERS}\"\n    labels: {workers: \"${WORKERS}\"}\n",
				edit: declare(map[string]string{"WORKERS": "8"}, nil)},
			check: func(t *testing.T, p *ecs.Plan) {
				c := container(only(t, p, "app"), "app")
				assert.Equal(t, []string{"serve", "--workers", "8"}, c.Command)
				assert.Equal(t, []string{"CMD-SHELL", "check --workers 8"}, c.HealthCheck.Command)
				assert.Equal(t, map[string]string{"workers": "8"}, c.DockerLabels)
			}},
		{name: "a build context from a variable is not refused",
			fx: fixture{compose: "services:\n  app:\n    build: {context: \"${SRC}/app\"}\n    image: x\n    ports: [\"8080\"]\n"},
			check: func(t *testing.T, p *ecs.Plan) {
				assert.True(t, hasNote(p, "app", "build"))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fx.services = app(fargate(8080))
			if tt.fx.shell == nil {
				tt.fx.shell = shell
			}
			p, err := tt.fx.render(t)
			if len(tt.want) == 0 {
				require.NoError(t, err)
				tt.check(t, p)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "hunter2", "an error never prints the value")
			assert.Len(t, strings.Split(err.Error(), "\n"), 1, "one line")
		})
	}
}

// diff shows a local command interpolated from the shell by its references, not its value.
func TestLocalViewShowsReferencesNotValues(t *testing.T) {
	fx := fixture{compose: "services:\n  app:\n    image: x\n    command: [serve, --token, \"${TOKEN}\"]\n    entrypoint: [\"$TOKEN\"]\n    healthcheck:\n      test: [CMD, check, \"${TOKEN:-none}\", \"$$HOME\"]\n",
		shell: map[string]string{"TOKEN": "hunter2"}, services: app(fargate(8080))}
	_, err := fx.render(t)
	require.Error(t, err)
	st := fx.stack(t)
	v := ecs.LocalView(st, nil)
	facts := map[string]string{}
	for _, f := range v.Services["app"] {
		facts[f.Field] = f.Value
	}
	assert.Equal(t, `["serve" "--token" "${TOKEN}"]`, facts["command"])
	assert.Equal(t, `["${TOKEN}"]`, facts["entrypoint"])
	assert.Contains(t, facts["health"], `["CMD" "check" "${TOKEN}" "$HOME"]`)
	for field, value := range facts {
		assert.NotContains(t, value, "hunter2", field)
	}
}
