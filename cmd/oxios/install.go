package main

import "io"

// CONTRACT STUB: owned by the hostsvc work. The CLI dispatcher calls these
// for `oxios install`, `oxios uninstall` and `oxios daemon install|uninstall`;
// args are the arguments after the subcommand. They return the exit code.
func cmdInstall(args []string, stdout, stderr io.Writer) int   { return 1 }
func cmdUninstall(args []string, stdout, stderr io.Writer) int { return 1 }
