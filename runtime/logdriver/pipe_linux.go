package logdriver

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for the stream pipes: the kernel's
// default pipe-max-size. With the default 64 KiB a daemon that logs a
// burst blocks in write() as soon as the driver falls 64 KiB behind; with
// more, the driver catches up in fewer, larger reads and writes.
const pipeSize = 1 << 20

// growPipe raises the capacity of the pipe r reads, when r is one. Failing
// is harmless (a smaller limit, not a pipe): the default stays.
func growPipe(r io.Reader) {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}
