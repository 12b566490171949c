package infra_test

import (
	"context"
	"sync"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// stub answers CloudFormation operations from handlers keyed by operation name, inside the
// real client's middleware stack (as kayac/ecspresso's tests do): no generated mock.
type stub struct {
	mu       sync.Mutex
	handlers map[string]func(in any) (any, error)
	calls    map[string]int
}

func newStub(handlers map[string]func(in any) (any, error)) *stub {
	return &stub{handlers: handlers, calls: map[string]int{}}
}

func (s *stub) client(t *testing.T) *cloudformation.Client {
	t.Helper()
	return cloudformation.New(cloudformation.Options{
		Region:      "ap-northeast-1",
		Credentials: sdkaws.AnonymousCredentials{},
		APIOptions: []func(*middleware.Stack) error{func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("stub", func(ctx context.Context, in middleware.InitializeInput, _ middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				op := awsmiddleware.GetOperationName(ctx)
				s.mu.Lock()
				s.calls[op]++
				h, ok := s.handlers[op]
				s.mu.Unlock()
				if !ok {
					t.Errorf("unexpected call %s", op)
					return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "Unexpected", Message: op}
				}
				out, err := h(in.Parameters)
				return middleware.InitializeOutput{Result: out}, middleware.Metadata{}, err
			}), middleware.After)
		}},
	})
}

func (s *stub) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func notFound(name string) error {
	return &smithy.GenericAPIError{Code: "ValidationError", Message: "Stack with id " + name + " does not exist"}
}
