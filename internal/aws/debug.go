package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// DebugLog makes every client built from cfg write one line to w per HTTP attempt: the
// service and operation, method and host, status, request id, attempt number and time.
// Never a body or a header: they carry secrets (and a signed request is a credential).
// The SDK's own ClientLogMode logs bodies, which is why this is ours.
func DebugLog(cfg *sdkaws.Config, w io.Writer) {
	var mu sync.Mutex // clients run calls in parallel; one line is written whole
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		if err := st.Initialize.Add(middleware.InitializeMiddlewareFunc("vmctlDebugAttempts",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(middleware.WithStackValue(ctx, attemptKey{}, new(atomic.Int32)), in)
			}), middleware.Before); err != nil {
			return err
		}
		// After the retry middleware, so it sees each attempt, not the operation once.
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("vmctlDebugLog",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				attempt := int32(1)
				if n, ok := middleware.GetStackValue(ctx, attemptKey{}).(*atomic.Int32); ok {
					attempt = n.Add(1)
				}
				method, host := "", ""
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					method, host = req.Method, req.URL.Host
				}
				start := time.Now()
				out, md, err := next.HandleFinalize(ctx, in)
				line := debugLine(ctx, method, host, md, err, attempt, time.Since(start))
				mu.Lock()
				fmt.Fprintln(w, line)
				mu.Unlock()
				return out, md, err
			}), middleware.After)
	})
}

type attemptKey struct{}

func debugLine(ctx context.Context, method, host string, md middleware.Metadata, err error, attempt int32, took time.Duration) string {
	status := "-"
	if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok && resp != nil {
		status = fmt.Sprint(resp.StatusCode)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		status = fmt.Sprint(re.Response.StatusCode)
	}
	reqID, _ := awsmiddleware.GetRequestIDMetadata(md)
	var rid interface{ ServiceRequestID() string }
	if reqID == "" && errors.As(err, &rid) {
		reqID = rid.ServiceRequestID()
	}
	line := fmt.Sprintf("aws: %s.%s %s %s → %s request-id=%s attempt=%d %s",
		strings.ReplaceAll(awsmiddleware.GetServiceID(ctx), " ", ""), awsmiddleware.GetOperationName(ctx), method, host, status, orDash(reqID), attempt, took.Round(time.Millisecond))
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae):
		line += " error=" + ae.ErrorCode()
	case err != nil:
		line += " error=" + oneLine(err.Error())
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
