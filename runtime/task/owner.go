package task

import (
	"os"
	"strconv"
	"strings"

	"github.com/a7garden/oxios/health"
)

// PortOwner finds the process listening on TCP port (host network), for
// the port guard's message.
func PortOwner(port int) (Process, error) {
	pid, err := health.PortOwner(port)
	if err != nil {
		return Process{}, err
	}
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return Process{PID: pid, Comm: strings.TrimSpace(string(comm))}, nil
}
