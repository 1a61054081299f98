package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

const (
	// maxRedirects and maxBody are the kubelet's limits.
	maxRedirects = 10
	maxBody      = 10 << 10
	userAgent    = "oxios-init-probe/1"
)

// httpProber GETs a URL: 200-399 is success; redirects are followed only to
// the same host (a redirect elsewhere is returned as is, like the kubelet
// without followNonLocalRedirects); at most maxBody bytes of body are read;
// certificates are not verified, as the kubelet does not.
type httpProber struct {
	url    string
	client *http.Client
}

var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", maxRedirects)

func newHTTPProber(url string) *httpProber {
	tr := &http.Transport{
		Proxy:              nil, // a probe talks to the local daemon, never via a proxy
		DisableKeepAlives:  true,
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet does not verify probe certificates
		DialContext:        (&net.Dialer{}).DialContext,
	}
	return &httpProber{url: url, client: &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errTooManyRedirects
			}
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

func (p *httpProber) Probe(ctx context.Context, deadline time.Time) Result {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return Result{Unknown, err.Error()}
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == context.Canceled {
			return Result{Unknown, "cancelled"}
		}
		return Result{Failure, err.Error()}
	}
	defer resp.Body.Close()
	// The kubelet reads the body (for its event message) within the same
	// timeout; a server that stalls after its headers fails the probe.
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
			return Result{Failure, "HTTP " + strconv.Itoa(resp.StatusCode) + ": body read timed out"}
		}
		return Result{Failure, "HTTP " + strconv.Itoa(resp.StatusCode) + ": body read: " + err.Error()}
	}
	code := resp.StatusCode
	detail := "HTTP " + strconv.Itoa(code)
	if n == maxBody {
		detail += " (body truncated at 10 KiB)"
	}
	if code >= 300 && code < 400 {
		detail += " (redirect to " + resp.Header.Get("Location") + " not followed: other host)"
	}
	if code >= 200 && code < 400 {
		return Result{Success, detail}
	}
	return Result{Failure, detail}
}
