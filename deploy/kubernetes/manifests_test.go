// Package kubernetes holds the Kubernetes manifests for oxios, generated
// from deploy/oxios.toml by runtime/kube (`go generate ./runtime/kube`;
// `oxios kube generate` prints the same); this test decodes them strictly into the k8s.io/api types and checks them against
// oxios-init's defaults and against the real oxios-init binary.
package kubernetes

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/a7garden/oxios/health"
	"github.com/a7garden/oxios/internal/testenv"
	"github.com/a7garden/oxios/runtime/supervisor"
)

func decodeStrict(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// UnmarshalStrict: an unknown or duplicate field (a typo such as
	// readOnlyRootFileSystem) is an error, not silently dropped.
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func manifests(t *testing.T) (*appsv1.Deployment, *corev1.Service) {
	var d appsv1.Deployment
	var s corev1.Service
	decodeStrict(t, "deployment.yaml", &d)
	decodeStrict(t, "service.yaml", &s)
	if d.APIVersion != "apps/v1" || d.Kind != "Deployment" || s.APIVersion != "v1" || s.Kind != "Service" {
		t.Fatalf("kinds: %s %s, %s %s", d.APIVersion, d.Kind, s.APIVersion, s.Kind)
	}
	return &d, &s
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func port(t *testing.T, c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container has no port named %q", name)
	return 0
}

// initHealth is oxios-init's health configuration from the manifest's
// OXIOS_INIT_* environment, parsed as oxios-init parses it.
func initHealth(t *testing.T, env map[string]string) health.Config {
	t.Helper()
	hc := health.DefaultConfig()
	for k, v := range env {
		name, ok := strings.CutPrefix(k, "OXIOS_INIT_")
		if !ok {
			continue
		}
		if _, err := hc.Set(strings.ReplaceAll(strings.ToLower(name), "_", "-"), v); err != nil {
			t.Errorf("%s=%q: %v", k, v, err)
		}
	}
	return hc
}

func TestManifestsMatchOxiosInit(t *testing.T) {
	d, svc := manifests(t)
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := envOf(c)

	if c.Image != "localhost/oxios:latest" {
		t.Errorf("image %q", c.Image)
	}
	if !slices.Equal(c.Command, []string{"/usr/local/bin/oxios-init", "--"}) {
		t.Errorf("command %q: oxios-init must be the entrypoint", c.Command)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("one daemon per data dir: want replicas 1 and Recreate")
	}

	// Grace: the manifest sets OXIOS_INIT_GRACE explicitly (without one,
	// oxios-init never SIGKILLs after a stop signal) to the supervisor's
	// default, and the kubelet waits longer than that before its SIGKILL.
	grace, err := time.ParseDuration(env["OXIOS_INIT_GRACE"])
	if err != nil || grace != supervisor.DefaultGrace {
		t.Errorf("OXIOS_INIT_GRACE=%q, want %v", env["OXIOS_INIT_GRACE"], supervisor.DefaultGrace)
	}
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= grace {
		t.Errorf("terminationGracePeriodSeconds %v must exceed oxios-init's grace %v", pod.TerminationGracePeriodSeconds, grace)
	}
	if env["OXIOS_INIT_REWRITE"] != "15:2" {
		t.Errorf("OXIOS_INIT_REWRITE=%q: the daemon drains only on SIGINT", env["OXIOS_INIT_REWRITE"])
	}

	// Probes hit oxios-init's health endpoint on the port it listens on.
	_, hp, err := net.SplitHostPort(env["OXIOS_INIT_HEALTH_LISTEN"])
	if err != nil {
		t.Fatalf("OXIOS_INIT_HEALTH_LISTEN: %v", err)
	}
	if strconv.Itoa(int(port(t, c, "health"))) != hp {
		t.Errorf("port health=%d, OXIOS_INIT_HEALTH_LISTEN port %s", port(t, c, "health"), hp)
	}
	for name, pc := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"startup": {c.StartupProbe, "/startupz"}, "readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/livez"}} {
		p := pc.p
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want httpGet", name)
			continue
		}
		if p.HTTPGet.Path != pc.path || p.HTTPGet.Port != intstr.FromString("health") {
			t.Errorf("%s probe: GET %s on %v, want %s on the health port", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), pc.path)
		}
		if (name == "liveness" || name == "startup") && p.SuccessThreshold > 1 {
			t.Errorf("%s probe: successThreshold must be 1", name)
		}
	}
	// The kubelet is the supervisor of record: oxios-init exits with the
	// daemon's code instead of restarting it, so restartCount counts
	// every restart.
	if env["OXIOS_INIT_RESTART"] != "never" {
		t.Errorf("OXIOS_INIT_RESTART=%q, want never: the kubelet restarts the container", env["OXIOS_INIT_RESTART"])
	}
	hc := initHealth(t, env)
	if hc.Startup.Spec == "" {
		t.Error("no OXIOS_INIT_STARTUP: /startupz would be 200 as soon as the daemon process exists")
	}
	// The kubelet's settings decide: oxios-init's own startup and liveness
	// budgets (period x failureThreshold) are longer than the kubelet's,
	// and each probe oxios-init makes when asked ends (its timeout) before
	// the kubelet stops waiting for the answer.
	budget := func(p *corev1.Probe) time.Duration {
		return time.Duration(p.PeriodSeconds*p.FailureThreshold) * time.Second
	}
	for _, b := range []struct {
		name string
		kube *corev1.Probe
		own  health.ProbeConfig
	}{{"startup", c.StartupProbe, hc.Startup}, {"readiness", c.ReadinessProbe, hc.Readiness}, {"liveness", c.LivenessProbe, hc.Liveness}} {
		if b.name != "readiness" && budget(b.kube) >= b.own.Period*time.Duration(b.own.FailureThreshold) {
			t.Errorf("%s: the kubelet's budget %v must be shorter than oxios-init's own %v x %d, or oxios-init acts first",
				b.name, budget(b.kube), b.own.Period, b.own.FailureThreshold)
		}
		if time.Duration(b.kube.TimeoutSeconds)*time.Second <= b.own.Timeout {
			t.Errorf("%s: timeoutSeconds %d must exceed oxios-init's probe timeout %v", b.name, b.kube.TimeoutSeconds, b.own.Timeout)
		}
	}
	sp := c.StartupProbe
	if budget(sp) < 15*time.Second {
		t.Errorf("startup budget shorter than oxios' 15 s readiness timeout")
	}

	// The single-host hardening.
	sc := c.SecurityContext
	psc := pod.SecurityContext
	switch {
	case sc == nil || psc == nil:
		t.Fatal("missing securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Error("runAsNonRoot must be true")
	case sc.RunAsUser == nil || *sc.RunAsUser != 65532:
		t.Error("runAsUser must be the image's USER 65532")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation must be false")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("privileged")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Error("capabilities: drop ALL, add nothing")
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault,
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("seccompProfile must be RuntimeDefault")
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	if !mounts["/data"] || !mounts["/tmp"] {
		t.Errorf("a read-only rootfs needs writable /data and /tmp, have %v", mounts)
	}
	// The instance lock lives with the data it protects.
	if lock := env["OXIOS_INIT_LOCK"]; filepath.Dir(lock) != "/data" {
		t.Errorf("OXIOS_INIT_LOCK=%q, want a file in /data", lock)
	}

	// The Service reaches the pods and their http port.
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pod", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("Service ports %v", svc.Spec.Ports)
	}
	if p, _ := strconv.Atoi(strings.TrimPrefix(env["OXIOS_DEMO_LISTEN"], "0.0.0.0:")); int32(p) != port(t, c, "http") {
		t.Errorf("OXIOS_DEMO_LISTEN=%q does not match port http", env["OXIOS_DEMO_LISTEN"])
	}
}

// TestManifestRunsUnderOxiosInit runs the real oxios-init and demo daemon
// with the manifest's environment (ports moved to free ones: tests never
// use fixed ports) and asks the endpoints the kubelet would probe. An
// OXIOS_INIT_* name oxios-init does not know fails here.
func TestManifestRunsUnderOxiosInit(t *testing.T) {
	d, _ := manifests(t)
	c := d.Spec.Template.Spec.Containers[0]
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The binaries as `make build` links them (the image's flags).
	initBin, demoBin := testenv.Bin(t, "oxios-init"), testenv.Bin(t, "oxios-demo")

	app, hp := strconv.Itoa(testenv.FreePort(t)), strconv.Itoa(testenv.FreePort(t))
	env := []string{"PATH=/usr/bin:/bin"}
	for k, v := range envOf(c) {
		v = strings.ReplaceAll(v, ":4200", ":"+app)
		v = strings.ReplaceAll(v, "0.0.0.0:9000", "127.0.0.1:"+hp)
		v = strings.ReplaceAll(v, "0.0.0.0:", "127.0.0.1:")
		if k == "OXIOS_DEMO_DATA_DIR" || k == "OXIOS_INIT_LOCK" {
			v = strings.Replace(v, "/data", filepath.Join(dir, "data"), 1)
		}
		env = append(env, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append(c.Command[1:], demoBin)
	cmd := exec.CommandContext(ctx, initBin, args...)
	cmd.Env = env
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	base := "http://127.0.0.1:" + hp
	for _, path := range []string{c.StartupProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path} {
		if err := waitOK(ctx, base+path, done); err != nil {
			t.Fatalf("GET %s: %v\noxios-init log:\n%s", path, err, logs.String())
		}
	}
	// The exec form of the same probes, for clusters that prefer it:
	// `oxios-init probe KIND` finds the endpoint through the container's
	// OXIOS_INIT_HEALTH_LISTEN.
	for _, kind := range []string{"startup", "readiness", "liveness"} {
		probe := exec.CommandContext(ctx, initBin, "probe", kind)
		probe.Env = env
		if out, err := probe.CombinedOutput(); err != nil {
			t.Errorf("oxios-init probe %s: %v\n%s", kind, err, out)
		}
	}
	// The kubelet's stop: SIGTERM to PID 1, which must exit within the
	// manifest's terminationGracePeriodSeconds.
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if limit := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second; time.Since(start) > limit {
			t.Errorf("oxios-init took %v to stop, beyond %v", time.Since(start), limit)
		}
		if err != nil {
			t.Logf("oxios-init exit: %v", err)
		}
	case <-ctx.Done():
		t.Fatalf("oxios-init did not stop\n%s", logs.String())
	}
}

// waitOK polls url like the kubelet does (its startup probe here runs
// every second; we ask every 20 ms) until it answers 200.
func waitOK(ctx context.Context, url string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("oxios-init exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("no 200 before the deadline (last: %v)", err)
		case <-tick.C:
		}
	}
}
