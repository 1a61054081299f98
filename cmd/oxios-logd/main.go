// Command oxios-logd is the daemon's logging binary: containerd's shim
// runs it for the task's stdout and stderr (cio.BinaryIO) and waits for it
// to signal ready before it creates the task, so its start-up time is on
// every `oxios start`'s path to ready. It is runtime/logdriver alone: no
// containerd client, gRPC or protobuf package to load and initialize,
// which bin/oxios (the fallback when this binary is missing) has to.
package main

import (
	"fmt"
	"os"

	"github.com/a7garden/oxios/runtime/logdriver"
)

func main() {
	if err := logdriver.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "oxios-logd:", err)
		os.Exit(1)
	}
}
