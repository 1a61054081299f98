package kube

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/a7garden/oxios/runtime/config"
)

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("/etc/oxios/test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// generate runs Generate and decodes its two documents strictly.
func generate(t *testing.T, cfg *config.Config) (*appsv1.Deployment, *corev1.Service) {
	t.Helper()
	var b bytes.Buffer
	if err := Generate(cfg, &b); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(b.String(), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2:\n%s", len(docs), b.String())
	}
	var d appsv1.Deployment
	var s corev1.Service
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &d); err != nil {
		t.Fatalf("deployment: %v\n%s", err, docs[0])
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &s); err != nil {
		t.Fatalf("service: %v\n%s", err, docs[1])
	}
	return &d, &s
}

func envMap(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestGenerateCarriesConfig(t *testing.T) {
	cfg := parse(t, `
[image]
ref = "registry.example/team/daemon:1.2"
pull = "always"
[container]
id = "gateway"
command = ["/usr/local/bin/oxios-init", "--", "/bin/daemon"]
args = ["--port={port}", "--data={data}"]
env = ["A={port}"]
user = "1000:2000"
port = 8080
data_mount = "/srv/state"
start_timeout = "100s"
stop_timeout = "45s"
read_only_rootfs = false
[resources]
memory = "1GiB"
cpus = 1.5
[init]
restart = "always"
startup = "tcp://127.0.0.1:{port}"
extra = { verbosity = "2" }
[kubernetes]
env = ["B=0.0.0.0:{port}"]
`)
	d, s := generate(t, cfg)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	env := envMap(c)
	checks := []struct {
		what      string
		got, want any
	}{
		{"name", d.Name, "gateway"},
		{"image", c.Image, "registry.example/team/daemon:1.2"},
		{"pull", c.ImagePullPolicy, corev1.PullAlways},
		{"command", c.Command, []string{"/usr/local/bin/oxios-init", "--", "/bin/daemon"}},
		{"args", c.Args, []string{"--port=8080", "--data=/srv/state"}},
		{"container.env", env["A"], "8080"},
		{"kubernetes.env", env["B"], "0.0.0.0:8080"},
		{"grace", env["OXIOS_INIT_GRACE"], "45s"},
		{"termination grace", *pod.TerminationGracePeriodSeconds, int64(65)},
		{"restart", env["OXIOS_INIT_RESTART"], "never"},
		{"startup", env["OXIOS_INIT_STARTUP"], "tcp://127.0.0.1:8080"},
		{"startup budget", c.StartupProbe.FailureThreshold, int32(100)},
		{"extra", env["OXIOS_INIT_VERBOSITY"], "2"},
		{"lock", env["OXIOS_INIT_LOCK"], "/srv/state/.oxios-init.lock"},
		{"health", env["OXIOS_INIT_HEALTH_LISTEN"], "0.0.0.0:9000"},
		{"ready file", env["OXIOS_INIT_READY_FILE"], ""},
		{"port", c.Ports[0].ContainerPort, int32(8080)},
		{"service port", s.Spec.Ports[0].Port, int32(8080)},
		{"service name", s.Name, "gateway"},
		{"uid", *c.SecurityContext.RunAsUser, int64(1000)},
		{"gid", *c.SecurityContext.RunAsGroup, int64(2000)},
		{"read-only", *c.SecurityContext.ReadOnlyRootFilesystem, false},
		{"memory", c.Resources.Limits.Memory().String(), "1Gi"},
		{"cpu", c.Resources.Limits.Cpu().String(), "1500m"},
		{"data mount", c.VolumeMounts[0].MountPath, "/srv/state"},
		{"mounts", len(c.VolumeMounts), 1},
	}
	for _, ck := range checks {
		if !equal(ck.got, ck.want) {
			t.Errorf("%s: got %v, want %v", ck.what, ck.got, ck.want)
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, _ := b.([]string)
		return slices.Equal(as, bs)
	}
	return a == b
}

// The defaults: the image's entrypoint and command spelled out, its user,
// kubernetes.memory as the limit when resources.memory is 0.
func TestGenerateDefaults(t *testing.T) {
	d, _ := generate(t, parse(t, ""))
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Command, ImageEntrypoint) || !slices.Equal(c.Args, ImageCmd) {
		t.Errorf("command %q args %q", c.Command, c.Args)
	}
	if *c.SecurityContext.RunAsUser != ImageUser || !*c.SecurityContext.RunAsNonRoot {
		t.Errorf("user %d", *c.SecurityContext.RunAsUser)
	}
	if got := c.Resources.Limits.Memory().String(); got != "512Mi" {
		t.Errorf("memory limit %s, want kubernetes.memory's 512Mi", got)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("pull policy %s", c.ImagePullPolicy)
	}
}

// A value is data, never YAML: quotes, colons, hashes, newlines and
// braces come back exactly.
func TestGenerateQuotesValues(t *testing.T) {
	hostile := `x: "y" # z {a} [b] \ 'c' ` + "\t\u00e9\u65e5"
	cfg := parse(t, fmt.Sprintf("[container]\nenv = [%q, %q, %q]\nargs = [%q]\n",
		"H="+hostile, "--=*", "N=\n- name: INJECTED", hostile))
	d, _ := generate(t, cfg)
	c := d.Spec.Template.Spec.Containers[0]
	env := envMap(c)
	if env["H"] != hostile || env["--"] != "*" || env["N"] != "\n- name: INJECTED" || env["INJECTED"] != "" {
		t.Errorf("env %q", env)
	}
	if !slices.Equal(c.Args, []string{hostile}) {
		t.Errorf("args %q", c.Args)
	}
	// The config's path is in the header comment: a newline in it must
	// not end the comment.
	cfg, err := config.Parse("/tmp/a\nkind: Secret\n.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := generate(t, cfg); d.Kind != "Deployment" {
		t.Errorf("kind %q", d.Kind)
	}
}

func TestGenerateRefusesNonKubernetesName(t *testing.T) {
	var b bytes.Buffer
	err := Generate(parse(t, "[container]\nid = \"Oxios_1\"\n"), &b)
	if err == nil || !strings.Contains(err.Error(), "container.id \"Oxios_1\"") {
		t.Fatalf("err %v", err)
	}
}

// ImageEntrypoint, ImageCmd and ImageUser are the Containerfile's.
func TestImageDefaultsMatchContainerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ENTRYPOINT " + flow(ImageEntrypoint), "CMD " + flow(ImageCmd), "USER 65532:65532",
	} {
		if !strings.Contains(string(data), "\n"+want+"\n") {
			t.Errorf("Containerfile has no line %q", want)
		}
	}
}
