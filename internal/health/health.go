// Package health probes services' HTTP health endpoints. The local stack
// probes through published ports; the cloud checks probe through load
// balancers. Both ask the same question: does the path answer 2xx?
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Prober sends one probe at a time to a URL.
type Prober struct {
	Client *http.Client
}

// NewProber returns a Prober whose single attempts time out after timeout.
func NewProber(timeout time.Duration) *Prober {
	return &Prober{Client: &http.Client{
		Timeout: timeout,
		// A fresh connection per probe: a stale keep-alive to a container
		// that was just replaced must not answer for the new one.
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}}
}

// Probe sends one GET and succeeds on a 2xx answer.
func (p *Prober) Probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Until probes every interval until a probe succeeds or ctx ends; the error
// then carries the last probe's failure, which is what a user needs to see.
func (p *Prober) Until(ctx context.Context, url string, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		err := p.Probe(ctx, url)
		if err == nil {
			return nil
		}
		// A probe cut short by the deadline says less than the one before it.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), fmt.Errorf("last probe: %w", last))
		case <-t.C:
		}
	}
}
