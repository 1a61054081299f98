package k8stest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// node is the kubelet that scripts/k8s-test.sh started.
type node struct {
	kubelet   string // read-only endpoint, http://127.0.0.1:PORT
	manifests string // staticPodPath
	podLogs   string // podLogsDir
	crictl    string
	report    string // where the table goes
}

// scenarioLabel marks each static Pod with its scenario: the kubelet names
// a static Pod NAME-NODENAME, the label finds it whatever the node's name.
const scenarioLabel = "oxios.test/scenario"

func needNode(t *testing.T) node {
	t.Helper()
	if os.Getenv("OXIOS_K8S_TEST") != "1" {
		t.Skip("needs the kubelet node of scripts/k8s-test.sh: run make k8s-test (as root)")
	}
	n := node{
		kubelet: os.Getenv("OXIOS_K8S_KUBELET"), manifests: os.Getenv("OXIOS_K8S_MANIFESTS"),
		podLogs: os.Getenv("OXIOS_K8S_PODLOGS"), crictl: os.Getenv("OXIOS_K8S_CRICTL"), report: os.Getenv("OXIOS_K8S_REPORT"),
	}
	if n.kubelet == "" || n.manifests == "" || n.podLogs == "" || n.crictl == "" {
		t.Fatal("OXIOS_K8S_KUBELET, _MANIFESTS, _PODLOGS and _CRICTL must all be set (scripts/k8s-test.sh sets them)")
	}
	return n
}

// staticPod is the Deployment's pod template as a Pod, with env overrides
// for the daemon's container.
func staticPod(t *testing.T, scenario string, env map[string]string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile("../deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(data, &d); err != nil {
		t.Fatalf("../deployment.yaml: %v", err)
	}
	tpl := d.Spec.Template
	labels := map[string]string{scenarioLabel: scenario}
	for k, v := range tpl.Labels {
		labels[k] = v
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "oxios-" + scenario, Namespace: "default", Labels: labels, Annotations: tpl.Annotations},
		Spec:       *tpl.Spec.DeepCopy(),
	}
	c := &pod.Spec.Containers[0]
	for name, value := range env {
		i := 0
		for i < len(c.Env) && c.Env[i].Name != name {
			i++
		}
		if i == len(c.Env) {
			c.Env = append(c.Env, corev1.EnvVar{Name: name})
		}
		c.Env[i].Value = value
	}
	return pod
}

// place writes pod into the static pod directory (renamed into place: the
// kubelet skips dot files, so it never reads half a file) and returns a
// func that removes it, which deletes the pod.
func (n node) place(t *testing.T, pod *corev1.Pod) (remove func()) {
	t.Helper()
	b, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(n.manifests, pod.Name+".yaml")
	tmp := filepath.Join(n.manifests, "."+pod.Name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	remove = func() {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove %s: %v", path, err)
		}
	}
	t.Cleanup(remove)
	return remove
}

// view is the kubelet's view of a scenario's pod and its one container.
type view struct {
	at          time.Time
	found       bool
	phase       corev1.PodPhase
	podIP       string
	ready       bool
	started     bool
	restarts    int32
	containerID string // without the runtime:// prefix
	state       string // running, waiting: REASON, terminated: CODE
	waiting     string // waiting reason
	lastExit    *int32 // lastState.terminated.exitCode
}

func (v view) String() string {
	if !v.found {
		return "(no pod)"
	}
	s := fmt.Sprintf("%s ready=%t restarts=%d %s", v.phase, v.ready, v.restarts, v.state)
	if v.lastExit != nil {
		s += fmt.Sprintf(" (last exit %d)", *v.lastExit)
	}
	return s
}

var kubeletClient = &http.Client{Timeout: 5 * time.Second}

// look reads the kubelet's /pods (status included for static pods).
func (n node) look(t *testing.T, scenario string) view {
	t.Helper()
	v := view{at: time.Now()}
	resp, err := kubeletClient.Get(n.kubelet + "/pods")
	if err != nil {
		t.Fatalf("kubelet /pods: %v", err)
	}
	defer resp.Body.Close()
	var list corev1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("kubelet /pods: %v", err)
	}
	for _, p := range list.Items {
		if p.Labels[scenarioLabel] != scenario {
			continue
		}
		v.found, v.phase, v.podIP = true, p.Status.Phase, p.Status.PodIP
		for _, cs := range p.Status.ContainerStatuses {
			v.ready, v.restarts = cs.Ready, cs.RestartCount
			v.started = cs.Started != nil && *cs.Started
			if _, id, ok := strings.Cut(cs.ContainerID, "://"); ok {
				v.containerID = id
			}
			switch s := cs.State; {
			case s.Running != nil:
				v.state = "running"
			case s.Waiting != nil:
				v.state, v.waiting = "waiting: "+s.Waiting.Reason, s.Waiting.Reason
			case s.Terminated != nil:
				v.state = fmt.Sprintf("terminated: %d", s.Terminated.ExitCode)
			}
			if lt := cs.LastTerminationState.Terminated; lt != nil {
				code := lt.ExitCode
				v.lastExit = &code
			}
		}
	}
	return v
}

// watch asks the kubelet every pollEvery until done says so. The kubelet's
// read-only API has no watch, so polling is the only way to follow it;
// pollEvery is the resolution of every time measured from a view.
const pollEvery = 100 * time.Millisecond

func (n node) watch(t *testing.T, scenario, what string, within time.Duration, done func(view) bool) view {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := n.look(t, scenario)
		if done(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not seen within %v; the kubelet's view: %v", scenario, what, within, v)
		}
		time.Sleep(pollEvery)
	}
}

func (n node) waitReady(t *testing.T, scenario string) view {
	t.Helper()
	return n.watch(t, scenario, "Ready", 2*time.Minute, func(v view) bool { return v.ready })
}

// hostPID is the host PID of the container's PID 1.
func (n node) hostPID(t *testing.T, containerID string) int {
	t.Helper()
	var out struct {
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	n.crictlJSON(t, &out, "inspect", "-o", "json", containerID)
	if out.Info.Pid <= 0 {
		t.Fatalf("crictl inspect %s: no pid", containerID)
	}
	return out.Info.Pid
}

// criStatus is crictl inspect's status of a container.
type criStatus struct {
	State      string `json:"state"`
	ExitCode   int32  `json:"exitCode"`
	FinishedAt string `json:"finishedAt"`
}

func (n node) containerStatus(t *testing.T, containerID string) criStatus {
	t.Helper()
	var out struct {
		Status criStatus `json:"status"`
	}
	n.crictlJSON(t, &out, "inspect", "-o", "json", containerID)
	return out.Status
}

func (n node) crictlJSON(t *testing.T, into any, args ...string) {
	t.Helper()
	out, err := exec.Command(n.crictl, args...).Output()
	if err != nil {
		t.Fatalf("crictl %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, into); err != nil {
		t.Fatalf("crictl %s: %v", strings.Join(args, " "), err)
	}
}

// daemonPID is the daemon's host PID: the only child of the container's
// PID 1 (oxios-init). Children are listed per thread, under the thread
// that forked them.
func daemonPID(t *testing.T, initPID int) int {
	t.Helper()
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", initPID))
	var kids []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			kids = append(kids, strings.Fields(string(b))...)
		}
	}
	if len(kids) != 1 {
		t.Fatalf("oxios-init (host PID %d) has children %q, want the daemon alone", initPID, kids)
	}
	pid, _ := strconv.Atoi(kids[0])
	return pid
}

// procStatus is /proc/PID/status as a map.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), ":")
		m[k] = strings.Join(strings.Fields(v), " ")
	}
	return m
}

// logLine is one line of a container log in the CRI format the kubelet
// reads: "TIMESTAMP STREAM P|F MESSAGE".
type logLine struct {
	at     time.Time
	stream string
	msg    string
}

// containerLog is the log of the container's Nth start (0.log, 1.log...).
func (n node) containerLog(t *testing.T, scenario string, attempt int) []logLine {
	t.Helper()
	path := n.logPath(t, scenario, attempt)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseCRILog(string(b))
}

func (n node) logPath(t *testing.T, scenario string, attempt int) string {
	t.Helper()
	// podLogsDir/NAMESPACE_NAME_UID/CONTAINER/N.log, NAME = oxios-SCENARIO-NODE
	m, _ := filepath.Glob(filepath.Join(n.podLogs, "default_oxios-"+scenario+"-*", "oxios", strconv.Itoa(attempt)+".log"))
	if len(m) != 1 {
		t.Fatalf("%s: container log %d.log: found %q", scenario, attempt, m)
	}
	return m[0]
}

func parseCRILog(s string) []logLine {
	var lines []logLine
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 4 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			continue
		}
		lines = append(lines, logLine{at: at, stream: f[1], msg: f[3]})
	}
	return lines
}

// find is the first line containing every one of subs.
func find(lines []logLine, subs ...string) (logLine, bool) {
	for _, l := range lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l.msg, s)
		}
		if all {
			return l, true
		}
	}
	return logLine{}, false
}

func dump(lines []logLine) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  %s %s %s\n", l.at.Format("15:04:05.000"), l.stream, l.msg)
	}
	return b.String()
}
