// Command oxios-demo is the small reference daemon that the oxios image runs
// by default and that tests and benchmarks supervise. It mirrors the
// lifecycle surface of the real oxios daemon (HTTP on 127.0.0.1:4200,
// /health, /health/ready, /metrics, `--foreground --config FILE`, a graceful
// drain on SIGINT only) and adds fault knobs from OXIOS_DEMO_* environment
// variables: delays, exits, signal behaviour, orphans, hangs. See README.md
// in this directory for every knob.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
)

// version is set at link time (-X main.version=...); otherwise the module
// version from the build info, or "dev".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func main() {
	if isHiddenMode(os.Args[1:]) {
		os.Exit(runHidden(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:]))
}

// run is the demo's life as a list of steps; the exit code is returned, only
// main exits.
func run(args []string) int {
	started := time.Now()
	// First, so that a stop signal arriving during start-up is seen (and
	// handled like any other) rather than killing the process by default.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	opts, err := parseOptions(args, os.LookupEnv, os.Environ(), os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "oxios-demo: %v\n", err)
		return 2
	}
	if opts.ShowVersion {
		fmt.Println(buildVersion())
		return 0
	}
	d := newDemo(opts, newLogger(os.Stdout, os.Stderr), started, sigs)
	return d.run()
}
