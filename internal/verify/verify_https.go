package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/vmctl/vmctl/internal/health"
)

// prober sends health requests to the public endpoint, its certificate verified against
// opts.TLS (the system's roots by default). keepAlive reuses one connection, so a
// burst measures the service rather than TLS handshakes; probes of readiness do not, so
// a stale connection to a replaced target cannot answer for the new one.
func (v *verifier) prober(keepAlive bool) *health.Prober {
	tr := &http.Transport{Proxy: nil, TLSClientConfig: v.opts.TLS.Clone(), DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1}
	return &health.Prober{Client: &http.Client{Timeout: v.opts.HTTPTimeout, Transport: tr}}
}

// https checks what the health rows cannot: that the public endpoint is HTTPS at all,
// and that plain HTTP only redirects to it (seed §2.2: port 80 redirects, 443 serves).
// Without a domain, it says the checks went over plain HTTP to the load balancer.
func (v *verifier) https(ctx context.Context) []Check {
	if !v.hasPublicServices() {
		return nil
	}
	c := Check{Check: CheckHTTPS}
	base := v.opts.Endpoint
	if base == "" && v.opts.Domain != "" {
		base = "https://" + v.opts.Domain
	}
	plain := v.opts.PlainEndpoint
	if plain == "" && v.opts.Domain != "" {
		plain = "http://" + v.opts.Domain
	}
	switch {
	case base == "":
		c.Subject, c.Verdict = "load balancer", Warn
		c.Detail = "the environment names no domain (aws.domain), so the health paths were checked over plain HTTP at the load balancer's DNS name: neither HTTPS nor its certificate was checked"
		c.Fix = "name the public domain in the environment file (aws.domain), or pass --endpoint https://…"
		return v.done(c)
	case !strings.HasPrefix(base, "https://"):
		c.Subject, c.Verdict = base, Warn
		c.Detail = "the endpoint is plain HTTP: neither HTTPS nor its certificate was checked"
		c.Fix = "verify the public HTTPS endpoint (--endpoint https://…)"
		return v.done(c)
	case plain == "":
		c.Subject, c.Verdict = base, Warn
		c.Detail = "HTTPS is checked by the health rows; which plain-HTTP address must redirect is unknown with --endpoint alone"
		return v.done(c)
	}
	c.Subject = plain
	c.Verdict, c.Detail, c.Fix = v.redirect(ctx, plain)
	return v.done(c)
}

// redirect asks plain HTTP for / and expects a redirect to HTTPS, not an answer.
func (v *verifier) redirect(ctx context.Context, plain string) (Verdict, string, string) {
	client := &http.Client{
		Timeout:       v.opts.HTTPTimeout,
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	u := strings.TrimSuffix(plain, "/") + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Fail, err.Error(), ""
	}
	resp, err := client.Do(req)
	if err != nil {
		return Unknown, fmt.Sprintf("GET %s: %s", u, oneLineErr(err)), ""
	}
	resp.Body.Close()
	fix := "make the load balancer's port 80 listener redirect to HTTPS (HTTP_301 to port 443) and serve nothing itself"
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return Fail, fmt.Sprintf("GET %s answered %s over plain HTTP instead of redirecting to HTTPS", u, resp.Status), fix
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme != "https" {
		return Fail, fmt.Sprintf("GET %s redirects to %q, which is not HTTPS", u, resp.Header.Get("Location")), fix
	}
	return Pass, fmt.Sprintf("GET %s redirects (%d) to %s", u, resp.StatusCode, loc), ""
}

func (v *verifier) hasPublicServices() bool {
	for _, s := range v.plan.Services {
		if s.LoadBalancer != nil {
			return true
		}
	}
	return false
}
