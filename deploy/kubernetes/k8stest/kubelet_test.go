package k8stest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/a7garden/oxios/runtime/contract"
)

// row is one line of the table printed at the end: what the kubelet saw.
type row struct{ scenario, kubelet, measured, bound string }

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(r row) {
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
}

// TestKubelet runs every scenario at once, each in a static Pod of its own
// made from the shipped Deployment's pod template.
func TestKubelet(t *testing.T) {
	n := needNode(t)
	t.Run("scenarios", func(t *testing.T) {
		t.Run("startup", func(t *testing.T) { t.Parallel(); slowStart(t, n) })
		t.Run("crash", func(t *testing.T) { t.Parallel(); crash(t, n) })
		t.Run("hang", func(t *testing.T) { t.Parallel(); hang(t, n) })
		t.Run("security+delete", func(t *testing.T) { t.Parallel(); securityThenDelete(t, n) })
	})
	writeTable(t, n.report)
}

// A daemon that needs 30 s to listen: the kubelet's startupProbe holds
// liveness off, nothing kills it, and it is Ready within 2 s of listening.
func slowStart(t *testing.T, n node) {
	const scenario = "slow"
	pod := staticPod(t, scenario, map[string]string{"OXIOS_DEMO_LISTEN_DELAY": "30s"})
	n.place(t, pod)
	var first view
	var startedAt time.Time
	gated := 0 // /status reads that showed oxios-init's liveness held off
	v := n.watch(t, scenario, "Ready", 2*time.Minute, func(v view) bool {
		if v.containerID == "" {
			return false
		}
		if first.containerID == "" {
			first = v
		}
		if v.restarts != 0 || v.containerID != first.containerID {
			t.Fatalf("the slow starter was killed: %v", v)
		}
		if v.started && startedAt.IsZero() {
			startedAt = v.at
		}
		// Well before the daemon can listen (30 s), oxios-init's own
		// liveness probe must not have run: startup gates it.
		if v.podIP != "" && v.at.Sub(first.at) < 25*time.Second {
			rep := initStatus(t, v.podIP)
			if lv := rep.Probes["liveness"]; rep.Started || !lv.Time.IsZero() {
				t.Fatalf("oxios-init ran liveness before the daemon started: %+v", rep)
			}
			gated++
		}
		return v.ready
	})
	if gated == 0 {
		t.Error("never read oxios-init's /status before the daemon listened")
	}
	logs := n.containerLog(t, scenario, 0)
	listen, ok := find(logs, "msg=listening")
	if !ok {
		t.Fatalf("no 'listening' line in the container log:\n%s", dump(logs))
	}
	if d := listen.at.Sub(logs[0].at); d < 29*time.Second {
		t.Fatalf("the daemon listened %v after its first log line: OXIOS_DEMO_LISTEN_DELAY=30s did not hold", d)
	}
	lag := v.at.Sub(listen.at)
	if lag > 2*time.Second {
		t.Errorf("Ready %v after the daemon listened, want within 2 s", lag)
	}
	if startedAt.Before(listen.at) {
		t.Errorf("the kubelet saw started=true %v before the daemon listened", listen.at.Sub(startedAt))
	}
	if l, ok := find(logs, "exited"); ok {
		t.Errorf("oxios-init logged an exit while the daemon started: %s", l.msg)
	}
	record(row{"startup (listen after 30 s)", v.String(),
		fmt.Sprintf("started +%.1fs, Ready +%.1fs after listening; oxios-init liveness idle until then; restarts 0",
			startedAt.Sub(listen.at).Seconds(), lag.Seconds()),
		"Ready <= 2 s after listening, never killed"})
}

// kill -9 of the daemon: oxios-init exits with 137, the kubelet restarts
// the container (restartCount 1) and the log says so; a second crash
// right after ends in CrashLoopBackOff.
func crash(t *testing.T, n node) {
	const scenario = "crash"
	n.place(t, staticPod(t, scenario, nil))
	v := n.waitReady(t, scenario)
	killDaemon(t, n, v)
	killed := time.Now()
	v = n.watch(t, scenario, "restartCount 1", time.Minute, func(v view) bool { return v.restarts >= 1 })
	seen := v.at.Sub(killed)
	if v.restarts != 1 || v.lastExit == nil || *v.lastExit != 128+9 {
		t.Errorf("after kill -9 of the daemon: %v, want restartCount 1 and last exit 137", v)
	}
	logs := n.containerLog(t, scenario, 0)
	if _, ok := find(logs, "exited", "killed by SIGKILL"); !ok {
		t.Errorf("the container log does not say the daemon was killed:\n%s", dump(logs))
	}
	first := v.String()

	v = n.waitReady(t, scenario)
	killDaemon(t, n, v)
	v = n.watch(t, scenario, "CrashLoopBackOff", time.Minute, func(v view) bool { return v.waiting == "CrashLoopBackOff" })
	record(row{"crash (kill -9 daemon)", first, fmt.Sprintf("restartCount 1 after %.1fs, log line; 2nd crash: %s", seen.Seconds(), v.state),
		"restartCount, log, CrashLoopBackOff"})
}

// initStatus is oxios-init's /status, on the pod's health port.
func initStatus(t *testing.T, podIP string) contract.Report {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + podIP + ":9000" + contract.PathStatus)
	if err != nil {
		t.Fatalf("oxios-init /status: %v", err)
	}
	defer resp.Body.Close()
	var rep contract.Report
	if err := json.NewDecoder(io.LimitReader(resp.Body, contract.MaxReport)).Decode(&rep); err != nil {
		t.Fatalf("oxios-init /status: %v", err)
	}
	return rep
}

func killDaemon(t *testing.T, n node, v view) {
	t.Helper()
	d := daemonPID(t, n.hostPID(t, v.containerID))
	if err := syscall.Kill(d, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", d, err)
	}
}

// POST /debug/hang: the kubelet's readinessProbe sees it within its own
// period x failureThreshold (+2 s), and the pod is NotReady.
func hang(t *testing.T, n node) {
	const scenario = "hang"
	pod := staticPod(t, scenario, nil)
	n.place(t, pod)
	v := n.waitReady(t, scenario)
	rp := pod.Spec.Containers[0].ReadinessProbe
	bound := time.Duration(rp.PeriodSeconds*rp.FailureThreshold)*time.Second + 2*time.Second

	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post("http://"+v.podIP+":4200/debug/hang", "", nil)
	if err != nil {
		t.Fatalf("POST /debug/hang on the pod's address %s: %v", v.podIP, err)
	}
	resp.Body.Close()
	hung := time.Now()
	v = n.watch(t, scenario, "NotReady", bound+10*time.Second, func(v view) bool { return !v.ready })
	lag := v.at.Sub(hung)
	if lag > bound {
		t.Errorf("NotReady %v after the hang, want within %v (readinessProbe %d s x %d + 2 s)", lag, bound, rp.PeriodSeconds, rp.FailureThreshold)
	}
	if v.restarts != 0 {
		t.Errorf("restarted before the readiness verdict: %v", v)
	}
	record(row{"hang (POST /debug/hang)", v.String(), fmt.Sprintf("NotReady after %.1fs", lag.Seconds()), fmt.Sprintf("<= %v", bound)})

	// Then the kubelet's livenessProbe restarts it: its budget, one probe
	// timeout, and the stop (the hung daemon never finishes its drain, so
	// oxios-init's grace runs out and it is killed).
	lp := pod.Spec.Containers[0].LivenessProbe
	grace := 10 * time.Second // OXIOS_INIT_GRACE in the manifest
	lbound := time.Duration(lp.PeriodSeconds*lp.FailureThreshold+lp.TimeoutSeconds)*time.Second + grace + 2*time.Second
	v = n.watch(t, scenario, "a restart by the livenessProbe", lbound+10*time.Second, func(v view) bool { return v.restarts >= 1 })
	if took := v.at.Sub(hung); took > lbound {
		t.Errorf("restarted %v after the hang, want within %v", took, lbound)
	}
	record(row{"hang: liveness", v.String(), fmt.Sprintf("restarted %.1fs after the hang", v.at.Sub(hung).Seconds()),
		fmt.Sprintf("<= %v (livenessProbe %d s x %d + %d s, grace %v, 2 s)", lbound, lp.PeriodSeconds, lp.FailureThreshold, lp.TimeoutSeconds, grace)})
}

// PID 1 is oxios-init and the securityContext holds; then deleting the pod
// drains the daemon (SIGINT) and the container exits 0 within the grace.
func securityThenDelete(t *testing.T, n node) {
	const scenario = "basic"
	pod := staticPod(t, scenario, nil)
	remove := n.place(t, pod)
	v := n.waitReady(t, scenario)
	initPID := n.hostPID(t, v.containerID)
	security(t, initPID, daemonPID(t, initPID))

	// Opened before the pod goes: the kubelet may remove the pod's logs
	// once it is gone, an open file stays readable.
	logf, err := os.Open(n.logPath(t, scenario, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	remove()
	deleted := time.Now()
	grace := 10 * time.Second // OXIOS_INIT_GRACE in the manifest
	var st criStatus
	deadline := deleted.Add(time.Duration(*pod.Spec.TerminationGracePeriodSeconds)*time.Second + 10*time.Second)
	for {
		st = n.containerStatus(t, v.containerID)
		if st.State == "CONTAINER_EXITED" || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollEvery) // the CRI has no exit event a test can subscribe to through crictl
	}
	finished, err := time.Parse(time.RFC3339Nano, st.FinishedAt)
	if st.State != "CONTAINER_EXITED" || err != nil {
		t.Fatalf("container %s after the pod was deleted: %+v", v.containerID, st)
	}
	took := finished.Sub(deleted)
	if st.ExitCode != 0 || took > grace {
		t.Errorf("container exited %d, %v after the pod was deleted; want 0 within %v", st.ExitCode, took, grace)
	}
	b, err := io.ReadAll(logf)
	if err != nil {
		t.Fatal(err)
	}
	logs := parseCRILog(string(b))
	sigint, ok := find(logs, "stop signal received", "signal=SIGINT", "action=drain")
	if !ok {
		t.Fatalf("the daemon did not get SIGINT:\n%s", dump(logs))
	}
	if _, ok := find(logs, "drained, exiting"); !ok {
		t.Errorf("the daemon did not drain:\n%s", dump(logs))
	}
	record(row{"delete pod", fmt.Sprintf("container %s, exit %d", strings.ToLower(strings.TrimPrefix(st.State, "CONTAINER_")), st.ExitCode),
		fmt.Sprintf("SIGINT +%.2fs, drained, exit 0 +%.2fs after the file went", sigint.at.Sub(deleted).Seconds(), took.Seconds()),
		fmt.Sprintf("exit 0 within %v", grace)})
}

// security checks PID 1 and the daemon against the pod's securityContext.
func security(t *testing.T, initPID, daemon int) {
	t.Helper()
	st := procStatus(t, initPID)
	nspid := strings.Fields(st["NSpid"])
	if len(nspid) < 2 || nspid[len(nspid)-1] != "1" {
		t.Errorf("oxios-init is not PID 1 in the pod: NSpid %q", st["NSpid"])
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", initPID))
	if argv := strings.Split(string(cmd), "\x00"); argv[0] != "/usr/local/bin/oxios-init" {
		t.Errorf("PID 1 is %q, want /usr/local/bin/oxios-init", argv[0])
	}
	want := map[string]string{
		"Uid": "65532 65532 65532 65532", "Gid": "65532 65532 65532 65532",
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2",
	}
	for _, pid := range []int{initPID, daemon} {
		st := procStatus(t, pid)
		for k, w := range want {
			if st[k] != w {
				t.Errorf("host PID %d: %s %q, want %q", pid, k, st[k], w)
			}
		}
	}
	mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", initPID))
	rootRO := false
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			rootRO = slices.Contains(strings.Split(f[5], ","), "ro")
		}
	}
	if !rootRO {
		t.Error("the root filesystem is writable: readOnlyRootFilesystem did not hold")
	}
	record(row{"security", "Running ready=true", "PID 1 oxios-init; uid 65532; CapEff 0; NoNewPrivs 1; Seccomp 2; ro root",
		"the pod's securityContext"})
}

func writeTable(t *testing.T, path string) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(a.scenario, b.scenario) })
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\tkubelet's view\tmeasured\tbound")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.scenario, r.kubelet, r.measured, r.bound)
	}
	w.Flush()
	if path == "" {
		t.Log("\n" + b.String())
		return
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}
