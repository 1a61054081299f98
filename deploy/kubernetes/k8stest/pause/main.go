// Command pause is the pod sandbox's process for scripts/k8s-test.sh: no
// registry is reachable there, so containerd's sandbox_image is this static
// program in an image built FROM scratch. Like registry.k8s.io/pause it
// holds the pod's namespaces open and exits 0 on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
