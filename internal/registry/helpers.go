package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Small helpers the packages above registry share.

// ShortDigest shortens a sha256 digest to its first 12 hex digits, for messages.
func ShortDigest(digest string) string {
	if d, ok := strings.CutPrefix(digest, "sha256:"); ok && len(d) > 12 {
		return "sha256:" + d[:12]
	}
	return digest
}

// FirstN keeps the first n items of a list and says how many more there were.
func FirstN(list []string, n int) []string {
	if len(list) <= n {
		return list
	}
	return append(slices.Clone(list[:n]), fmt.Sprintf("and %d more", len(list)-n))
}

// Dedupe drops repeated items, keeping the first of each in order.
func Dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// SleepCtx waits d, or less when ctx ends first; it says whether d passed.
func SleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
