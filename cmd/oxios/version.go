package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the Makefile: -X main.version=$(git describe) -X main.commit=....
var (
	version = ""
	commit  = ""
)

func versionCommand() *command {
	return &command{
		name: "version", summary: "print the version, commit, Go and containerd client versions",
		help: "Print oxios' version and commit, and the Go and containerd client versions it was built with (also: oxios --version).",
		setup: func(fs *flagSet) runFunc {
			return noArgs("version", cmdVersion)
		},
	}
}

func cmdVersion(e *env) int {
	v, c, ctrd := buildVersions()
	fmt.Fprintf(e.stdout, "oxios %s\n  commit:            %s\n  go:                %s\n  containerd client: %s\n", v, c, runtime.Version(), ctrd)
	return exitOK
}

// buildVersions reads what the linker and the go command recorded: the
// version and commit (ldflags, else the VCS stamp of a `go build` without
// -buildvcs=false) and the containerd client module's version.
func buildVersions() (ver, rev, ctrd string) {
	ver, rev, ctrd = version, commit, "unknown"
	bi, ok := debug.ReadBuildInfo()
	if ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/containerd/containerd/v2" {
				ctrd = d.Version
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && rev == "" {
				rev = s.Value
			}
		}
		if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
	}
	if ver == "" {
		ver = "dev"
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev, ctrd
}
