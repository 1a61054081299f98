package proctree

import (
	"bytes"
	"encoding/binary"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls on NUL-terminated paths in the Walker's own buffers: the
// os and unix packages copy every path into a new C string, and os.File
// and its directory listing allocate on every open.

const (
	atCWD   = unix.AT_FDCWD
	linkMax = 64 // "socket:[4294967295]" and more; longer targets are cut
)

// openat opens pathZ (NUL-terminated) relative to dir.
func openat(dir int, pathZ []byte, flags int) (int, error) {
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dir), uintptr(unsafe.Pointer(&pathZ[0])),
			uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

func openDir(dir int, pathZ []byte) (int, error) {
	return openat(dir, pathZ, unix.O_RDONLY|unix.O_DIRECTORY)
}

// dirExists reports whether nameZ is a directory in dir.
func dirExists(dir int, nameZ []byte) bool {
	fd, err := openat(dir, nameZ, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return false
	}
	closeFD(fd)
	return true
}

func closeFD(fd int) { unix.Close(fd) }

// readAll reads fd to its end into buf[:0], growing buf when full.
func readAll(fd int, buf []byte) ([]byte, error) {
	if cap(buf) < 512 {
		buf = make([]byte, 0, 512)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// readFile reads the file pathZ in dir into buf[:0].
func readFile(dir int, pathZ []byte, buf []byte) ([]byte, error) {
	fd, err := openat(dir, pathZ, unix.O_RDONLY)
	if err != nil {
		return buf[:0], err
	}
	defer closeFD(fd)
	return readAll(fd, buf)
}

// readDir reads every entry of the open directory fd into buf[:0], as
// linux_dirent64 records (see nextDirent).
func readDir(fd int, buf []byte) ([]byte, error) {
	if cap(buf) < 4096 {
		buf = make([]byte, 0, 4096)
	}
	buf = buf[:0]
	for {
		if cap(buf)-len(buf) < 512 { // room for at least one whole record
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := unix.Getdents(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf[:0], err
		}
		if n <= 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// nextDirent splits the first linux_dirent64 record off b: its name with
// the terminating NUL, or nil for "." and "..".
func nextDirent(b []byte) (nameZ, rest []byte) {
	const nameOff = 19 // d_ino 8, d_off 8, d_reclen 2, d_type 1
	if len(b) < nameOff {
		return nil, nil
	}
	reclen := int(binary.NativeEndian.Uint16(b[16:18]))
	if reclen < nameOff || reclen > len(b) {
		return nil, nil
	}
	name := b[nameOff:reclen]
	end := bytes.IndexByte(name, 0)
	if end < 0 || (end == 1 && name[0] == '.') || (end == 2 && name[0] == '.' && name[1] == '.') {
		return nil, b[reclen:]
	}
	return name[:end+1], b[reclen:]
}

// readLink reads the target of the link nameZ in dir into buf.
func readLink(dir int, nameZ, buf []byte) ([]byte, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dir), uintptr(unsafe.Pointer(&nameZ[0])),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return nil, e
		}
		return buf[:n], nil
	}
}
