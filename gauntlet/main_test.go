package gauntlet

import (
	"fmt"
	"net"
	"os"
	"testing"
)

// helperEnv makes the test binary a helper process instead of a test run:
// "listen:PORT" is the foreign process of scenario 5, a listener that is
// neither oxios nor ours.
const helperEnv = "GAUNTLET_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(helper(h))
	}
	code := m.Run()
	table.mu.Lock()
	rows := table.rows
	table.mu.Unlock()
	if len(rows) > 0 {
		fmt.Println()
		fmt.Println("oxios reliability gauntlet")
		writeTable(os.Stdout, rows)
		saveTable(rows)
	}
	os.Exit(code)
}

func helper(h string) int {
	var port string
	if _, err := fmt.Sscanf(h, "listen:%s", &port); err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: unknown helper\n", helperEnv, h)
		return 2
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The parent waits for this line: the port is taken from here on.
	fmt.Println("listening")
	for {
		c, err := l.Accept()
		if err != nil {
			return 1
		}
		c.Close()
	}
}
