package health

import (
	"net/url"
	"path"
	"strings"
)

// /status is served to whoever reaches the endpoint (the pod network, in a
// cluster), while probe specs come from the operator's config and may
// carry secrets: a token in an exec probe's arguments or in a URL's query.
// Only what identifies the probe is shown.

// redactSpec keeps an exec probe's command base name and an URL's scheme,
// host and path; tcp:// and listen:// carry nothing secret.
func redactSpec(spec string) string {
	if rest, ok := strings.CutPrefix(spec, "exec:"); ok {
		argv, err := splitArgs(rest)
		if err != nil || len(argv) == 0 {
			return "exec:…"
		}
		s := "exec:" + path.Base(argv[0])
		if len(argv) > 1 {
			s += " …"
		}
		return s
	}
	if strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://") {
		return redactURL(spec)
	}
	return spec
}

// redactURL drops the user info, query and fragment of one URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Not parseable: cut at the first character that starts a secret.
		if i := strings.IndexAny(s, "?#@"); i >= 0 {
			return s[:i] + "…"
		}
		return s
	}
	cut := u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != ""
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if cut {
		return u.String() + "?…"
	}
	return u.String()
}

// redactText redacts every http(s) URL inside a probe's detail (an HTTP
// probe's error names the URL it got, a redirect target included).
func redactText(s string) string {
	if !strings.Contains(s, "http") {
		return s // the steady state: details are constants
	}
	var b strings.Builder
	for {
		i := urlStart(s)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		end := strings.IndexAny(s, " \t\n\"'<>`")
		if end < 0 {
			end = len(s)
		}
		// Punctuation after a URL ("GET URL: timeout") is not part of it.
		tok := strings.TrimRight(s[:end], ":,.;)]")
		b.WriteString(redactURL(tok))
		s = s[len(tok):]
	}
}

func urlStart(s string) int {
	a, b := strings.Index(s, "http://"), strings.Index(s, "https://")
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}
