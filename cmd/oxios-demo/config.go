package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	toml "github.com/pelletier/go-toml/v2"
)

// defaultListen is the real daemon's gateway address.
const defaultListen = "127.0.0.1:4200"

// options is everything the demo was told, from flags, environment and the
// optional config file, already validated.
type options struct {
	Listen       string
	ListenSource string // which flag/variable/file decided Listen, for the log
	Config       string
	ShowVersion  bool
	knobs
}

// usageError is a bad flag, variable or config file: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parseOptions resolves the listen address with the usual precedence:
// --listen, then OXIOS_DEMO_LISTEN, then the config file's [gateway], then
// 127.0.0.1:4200.
func parseOptions(args []string, lookup func(string) (string, bool), environ []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("oxios-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "address to serve HTTP on (default "+defaultListen+"; env "+envListen+")")
	fs.StringVar(&o.Config, "config", "", "TOML config file; only [gateway] host and port are read, like the real oxios daemon")
	// The real daemon's spelling is `oxios --foreground --config FILE`.
	// The demo never daemonizes, so the flag is accepted and changes nothing.
	fs.Bool("foreground", true, "accepted for compatibility with the real daemon; the demo always runs in the foreground")
	fs.BoolVar(&o.ShowVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return o, &usageError{err}
	}
	if fs.NArg() > 0 {
		return o, &usageError{fmt.Errorf("unexpected argument %q (oxios-demo takes flags only)", fs.Arg(0))}
	}
	k, err := parseKnobs(lookup, environ)
	if err != nil {
		return o, &usageError{err}
	}
	o.knobs = k

	switch {
	case *listen != "":
		if err := checkListenAddr(*listen); err != nil {
			return o, &usageError{fmt.Errorf("--listen %q: %w", *listen, err)}
		}
		o.Listen, o.ListenSource = *listen, "--listen"
	case k.Listen != "":
		o.Listen, o.ListenSource = k.Listen, envListen
	case o.Config != "":
		addr, err := readGatewayConfig(o.Config)
		if err != nil {
			return o, &usageError{err}
		}
		o.Listen, o.ListenSource = addr, o.Config
	default:
		o.Listen, o.ListenSource = defaultListen, "default"
	}
	if o.Config != "" && o.ListenSource != o.Config {
		// Still parse it: a broken file must not go unnoticed just because
		// an override hid it.
		if _, err := readGatewayConfig(o.Config); err != nil {
			return o, &usageError{err}
		}
	}
	return o, nil
}

// checkListenAddr accepts host:port with a numeric port (0 picks a free one;
// the chosen address is logged and written to the state file).
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port: %w", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number between 0 and 65535", port)
	}
	return nil
}

// gatewayFile is the part of the real daemon's config.toml the demo reads.
// Every other table and key of the real file is ignored on purpose, so the
// user's own config works unchanged.
type gatewayFile struct {
	Gateway struct {
		Host *string `toml:"host"`
		Port *int64  `toml:"port"`
	} `toml:"gateway"`
}

// readGatewayConfig returns host:port from [gateway], filling what is
// missing from 127.0.0.1:4200.
func readGatewayConfig(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--config: %w", err)
	}
	return parseGatewayConfig(path, data)
}

func parseGatewayConfig(path string, data []byte) (string, error) {
	var f gatewayFile
	if err := toml.Unmarshal(data, &f); err != nil {
		var derr *toml.DecodeError
		if errors.As(err, &derr) {
			row, col := derr.Position()
			return "", fmt.Errorf("%s:%d:%d: %s", path, row, col, derr.Error())
		}
		return "", fmt.Errorf("%s: %w", path, err)
	}
	host, port := "127.0.0.1", int64(4200)
	if f.Gateway.Host != nil {
		host = *f.Gateway.Host
	}
	if f.Gateway.Port != nil {
		port = *f.Gateway.Port
	}
	if port < 0 || port > 65535 {
		return "", fmt.Errorf("%s: [gateway] port = %d: not between 0 and 65535", path, port)
	}
	addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
	if err := checkListenAddr(addr); err != nil {
		return "", fmt.Errorf("%s: [gateway] host = %q: %w", path, host, err)
	}
	return addr, nil
}
