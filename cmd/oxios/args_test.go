package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/task"
)

// oxios runs the CLI in-process; it returns stdout, stderr and the code.
func oxios(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// commandPaths lists every command and subcommand as its arguments
// ("status", "daemon install").
func commandPaths(cmds []*command, prefix []string) [][]string {
	var paths [][]string
	for _, c := range cmds {
		p := append(append([]string{}, prefix...), c.name)
		paths = append(paths, p)
		paths = append(paths, commandPaths(c.sub, p)...)
	}
	return paths
}

// Every command's --help, -h and `oxios help COMMAND` print its usage on
// stdout and exit 0.
func TestHelpEveryCommand(t *testing.T) {
	paths := commandPaths(commands(), nil)
	if len(paths) < 15 {
		t.Fatalf("only %d commands in the table", len(paths))
	}
	for _, p := range paths {
		want := "usage: oxios " + strings.Join(p, " ")
		for _, args := range [][]string{append(p, "--help"), append(p, "-h"), append([]string{"help"}, p...)} {
			out, errs, code := oxios(t, args...)
			if code != 0 || !strings.HasPrefix(out, want) || errs != "" || !strings.Contains(out, "--help") {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
			}
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"--config", "/x.toml", "--help"}} {
		out, errs, code := oxios(t, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: oxios COMMAND") || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
		for _, c := range commands() {
			if !strings.Contains(out, "  "+c.name) {
				t.Errorf("%q: the main usage does not list %s", args, c.name)
			}
		}
	}
	if out, errs, code := oxios(t); code != 2 || out != "" || !strings.HasPrefix(errs, "usage: oxios") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// Bad input: exit 2, one line on stderr that names it, suggests a close
// match and points at --help.
func TestUnknownFlagsAndCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "--jsno"}, []string{"oxios status: unknown flag --jsno", "did you mean --json?", "'oxios status --help'"}},
		{[]string{"status", "--confg=/x"}, []string{"unknown flag --confg", "did you mean --config?"}},
		{[]string{"logs", "--folow"}, []string{"unknown flag --folow", "did you mean --follow?"}},
		{[]string{"--adress", "/x", "status"}, []string{"oxios: unknown flag --adress", "did you mean --address?", "'oxios --help'"}},
		{[]string{"status", "-x"}, []string{"unknown flag -x", "'oxios status --help'"}},
		{[]string{"stauts"}, []string{`oxios: unknown command "stauts"`, "did you mean status?", "'oxios --help'"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"; see 'oxios --help'`}},
		{[]string{"config", "shwo"}, []string{`oxios config: unknown command "shwo"`, "did you mean show?", "'oxios config --help'"}},
		{[]string{"daemon", "instal"}, []string{"did you mean install?"}},
		{[]string{"completion", "bsh"}, []string{`unknown shell "bsh"`, "did you mean bash?"}},
		{[]string{"status", "--lines"}, []string{"flag --lines needs a value"}},
		{[]string{"status", "-n", "many"}, []string{"flag --lines: expected a non-negative integer"}},
		{[]string{"stop", "now"}, []string{`unexpected argument "now"`}},
	} {
		out, errs, code := oxios(t, tc.args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q: want exit 2 and one line", tc.args, code, out, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%q: stderr %q lacks %q", tc.args, errs, w)
			}
		}
	}
	if _, errs, _ := oxios(t, "frobnicate"); strings.Contains(errs, "did you mean") {
		t.Errorf("a suggestion for a word close to nothing: %q", errs)
	}
}

func TestSuggest(t *testing.T) {
	for in, want := range map[string]string{"stauts": "status", "strat": "start", "lgo": "log", "restrat": "restart", "xyz": "", "inst": "install"} {
		if got := suggest(in, commandNames(commands())); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// Common flags are accepted before or after the command, as --long,
// --long=V and (Go's flag style, which older scripts use) -long.
func TestCommonFlagsAnywhere(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("[container]\nport = 4321\n"), 0o644)
	for _, args := range [][]string{
		{"--config", p, "config", "check"},
		{"config", "--config=" + p, "check"},
		{"config", "check", "-config", p},
		{"--verbose", "config", "check", "--config", p, "-v"},
	} {
		out, errs, code := oxios(t, args...)
		if code != 0 || !strings.HasPrefix(out, p+": ok") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// Short flags take their value as the next argument, after =, or
// attached (-n5, as tail takes it).
func TestShortFlagValues(t *testing.T) {
	for _, args := range [][]string{{"-n", "5"}, {"-n=5"}, {"-n5"}, {"--lines", "5"}, {"--lines=5"}, {"-lines", "5"}} {
		fs := newFlagSet("oxios logs")
		var n int
		var f bool
		fs.Int(&n, "lines", "n", "N", "")
		fs.Bool(&f, "follow", "f", "")
		rest, err := fs.parse(append(args, "x"))
		if err != nil || n != 5 || len(rest) != 1 || rest[0] != "x" {
			t.Errorf("%q: n=%d rest=%q err=%v", args, n, rest, err)
		}
	}
	fs := newFlagSet("oxios logs")
	var f bool
	fs.Bool(&f, "follow", "f", "")
	if _, err := fs.parse([]string{"-fx"}); err == nil || !strings.Contains(err.Error(), "unknown flag -fx") {
		t.Errorf("-fx (a boolean with something attached): %v", err)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-V"}} {
		out, errs, code := oxios(t, args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "oxios ") ||
			!strings.Contains(out, "go:                "+runtime.Version()) ||
			!strings.Contains(out, "containerd client: v2.") || !strings.Contains(out, "commit: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// The bash script is run by bash: completing real command lines gives
// the table's commands and flags.
func TestCompletion(t *testing.T) {
	for _, sh := range shells {
		out, errs, code := oxios(t, "completion", sh)
		if code != 0 || errs != "" || !strings.Contains(out, "oxios") || !strings.Contains(out, "status") || !strings.Contains(out, "no-logs") {
			t.Errorf("completion %s: exit %d, stderr %q, stdout %q", sh, code, errs, out)
		}
	}
	shellChecks(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	script, _, _ := oxios(t, "completion", "bash")
	for line, want := range map[string]string{
		"oxios sta":                      "start status",
		"oxios status --j":               "--json",
		"oxios --config /f.toml sta":     "start status",
		"oxios daemon i":                 "install",
		"oxios daemon install --d":       "--dry-run",
		"oxios config s":                 "show",
		"oxios completion f":             "fish",
		"oxios log -":                    "--follow -f --lines -n --since --until --timestamps -t --stream --raw --config --address --verbose -v --help",
		"oxios status -n 5 --no":         "--no-logs",
		"oxios help d":                   "daemon",
		"oxios serve --fo":               "--foreground",
		"oxios config check --config c ": "--config --address --verbose -v --help",
	} {
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			string(rune('0'+len(words)-1)) + "\n_oxios\necho \"${COMPREPLY[*]}\"\n"
		got, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%q completes to %q (%v), want %q", line, strings.TrimSpace(string(got)), err, want)
		}
	}
}

// shellChecks parses the zsh and fish scripts with those shells and has
// fish complete a command line, where they are installed (they are not
// among the packages the tests need: bash is checked in full above).
func shellChecks(t *testing.T) {
	for _, sh := range []string{"zsh", "fish"} {
		bin, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: its script is not parsed", sh)
			continue
		}
		script, _, _ := oxios(t, "completion", sh)
		p := filepath.Join(t.TempDir(), "oxios."+sh)
		os.WriteFile(p, []byte(script), 0o644)
		if out, err := exec.Command(bin, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
		if sh != "fish" {
			continue
		}
		out, err := exec.Command(bin, "--no-config", "-c", "source "+p+"; complete -C 'oxios sta'; complete -C 'oxios daemon '").CombinedOutput()
		got := string(out)
		if err != nil || !strings.Contains(got, "start\t") || !strings.Contains(got, "status\t") || !strings.Contains(got, "install\n") {
			t.Errorf("fish completes %q (%v)", got, err)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[container]\nport = 4321\n"), 0o644)
	out, errs, code := oxios(t, "config", "check", "--config", good)
	if code != 0 || out != good+": ok (1 keys set)\n" {
		t.Errorf("good: exit %d, %q %q", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[image]\nref = \"x\"\n[container]\nprot = 1\n"), 0o644)
	out, errs, code = oxios(t, "config", "check", "--config", bad)
	if code != 2 || out != "" || !strings.HasPrefix(errs, "oxios: "+bad+":4: key container.prot: unknown key") || !strings.Contains(errs, "did you mean container.port?") {
		t.Errorf("unknown key: exit %d, %q %q", code, out, errs)
	}
	os.WriteFile(bad, []byte("[container]\n\nport = 70000\n"), 0o644)
	if _, errs, code = oxios(t, "config", "check", "--config", bad); code != 2 || !strings.Contains(errs, bad+":3: key container.port: expected 1-65535") {
		t.Errorf("bad value: exit %d, %q", code, errs)
	}
	missing := filepath.Join(dir, "missing.toml")
	for _, args := range [][]string{{"config", "check", "--config", missing}, {"config", "show", "--config", missing}, {"status", "--config", missing}, {"logs", "--config", missing}} {
		if _, errs, code := oxios(t, args...); code != 2 || !strings.Contains(errs, missing) || !strings.Contains(errs, "not found") {
			t.Errorf("%q: exit %d, %q: want 2 naming the file", args, code, errs)
		}
	}
	t.Setenv("OXIOS_CONFIG", missing)
	if _, errs, code := oxios(t, "config", "check"); code != 2 || !strings.Contains(errs, missing) {
		t.Errorf("$OXIOS_CONFIG missing: exit %d, %q", code, errs)
	}
}

// config show: every key, as TOML, with its origin.
func TestConfigShowOrigins(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("[container]\n# a comment\nport = 4321\n[init]\nextra = { liveness_period = \"5s\" }\n"), 0o644)
	t.Setenv("CONTAINERD_ADDRESS", "/env.sock")
	out, errs, code := oxios(t, "config", "show", "--config", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"# config file: " + p,
		`address = "/env.sock"`, "# environment $CONTAINERD_ADDRESS",
		"port = 4321", "# file " + p + ":3",
		`extra = { "liveness_period" = "5s" }`, "# file " + p + ":5",
		`namespace = "oxios"`, `start_timeout = "15s"`, "cpus = 0.0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = oxios(t, "config", "show", "--config", p, "--address", "/flag.sock")
	if !strings.Contains(out, `address = "/flag.sock"`) || !strings.Contains(out, "# flag --address") {
		t.Errorf("--address not shown as a flag:\n%s", out)
	}
	t.Setenv("CONTAINERD_ADDRESS", "")
	out, _, _ = oxios(t, "config", "show", "--config", p)
	if !strings.Contains(out, "# default; unset, so oxios uses it when it answers, else the private") {
		t.Errorf("the found address is not explained:\n%s", out)
	}
	// What show prints is a config file: it checks as one.
	shown := filepath.Join(t.TempDir(), "shown.toml")
	os.WriteFile(shown, []byte(out), 0o644)
	if _, errs, code := oxios(t, "config", "check", "--config", shown); code != 0 {
		t.Errorf("config show's output does not check: %s", errs)
	}
}

// --config is a common flag; uninstall has no use for it and must not
// refuse it (`oxios --config F uninstall` used to exit 2).
func TestUninstallAcceptsCommonConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	for _, args := range [][]string{
		{"--config", "/f.toml", "uninstall", "--dry-run", "--user"},
		{"daemon", "uninstall", "--config=/f.toml", "--dry-run", "--user"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String(), "not installed") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}

// BenchmarkCommandLine: what the hand-written parser costs per run of
// the CLI: building the command table and parsing a status command line
// (bench/cli/RESULTS.md).
func BenchmarkCommandLine(b *testing.B) {
	args := []string{"--config", "/etc/oxios/config.toml", "status", "--json", "-n", "5", "-v"}
	for b.Loop() {
		top := newFlagSet("oxios")
		c := &commonFlags{}
		addCommon(top, c)
		name, rest, err := splitCommand(top, args)
		cmd := findCommand(commands(), name)
		if err != nil || cmd == nil {
			b.Fatal(err)
		}
		fs, _ := cmd.flags("oxios status", c)
		if _, err := fs.parse(rest); err != nil {
			b.Fatal(err)
		}
	}
}

// Text from the container is escaped as oxios logs escapes it.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{"plain\ttext é": "plain\ttext é", "\x1b[2Jgone": `\x1b[2Jgone`, "a\rb": `a\rb`} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// The human status of a running task that is not ready, from a
// Description as containerd and oxios-init would fill it.
func TestPrintStatusNotReady(t *testing.T) {
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	started, probed := now.Add(-65*time.Second), now.Add(-1500*time.Millisecond)
	d := &task.Description{
		Status: &task.Status{State: "running", PID: 42, StartedAt: &started, Restarts: 2, Image: "localhost/oxios:latest",
			URL: "http://127.0.0.1:4200", Log: "/var/log/oxios/oxios.log"},
		UptimeSeconds: 65,
		Probes: map[string]task.ProbeResult{
			"liveness":  {Spec: "http://127.0.0.1:4200/health", Result: "success", Time: &probed, Successes: 7},
			"readiness": {Spec: "http://127.0.0.1:4200/health/ready", Result: "failure", Detail: "HTTP 503\x1b[2J", Time: &probed, Failures: 3},
			"startup":   {},
		},
		LogTail: []string{"one", "two"},
	}
	var b bytes.Buffer
	printStatus(&b, d, &addressChoice{Address: "/run/oxios/containerd/containerd.sock", Reason: "the private containerd of make run"}, now)
	want := `running (PID 42, not ready, 2 restarts)
       ready: no (3 readiness failures in a row)
      uptime: 1m5s (started ` + stamp(&started) + `), 2 restarts inside the container
      probes: readiness http://127.0.0.1:4200/health/ready failure (HTTP 503\x1b[2J), 2s ago
              liveness  http://127.0.0.1:4200/health success, 2s ago
       image: localhost/oxios:latest (digest unknown)
         url: http://127.0.0.1:4200
         log: /var/log/oxios/oxios.log
  containerd: /run/oxios/containerd/containerd.sock (the private containerd of make run)

-- last 2 log lines (/var/log/oxios/oxios.log) --
one
two
`
	if b.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", b.String(), want)
	}
}
