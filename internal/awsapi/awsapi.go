// Package awsapi holds what the ecs platform and the alb router share: the
// AWS configuration from the standard chain, and errors that say what to do.
package awsapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
)

// Config loads the worker's AWS configuration: credentials from the
// standard chain (environment, shared files, the task or instance role),
// never from the spec; region from the spec, else the chain. The endpoint
// can be moved with AWS_ENDPOINT_URL (the tests' stand-in does).
func Config(ctx context.Context, region string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("aws: loading the configuration: %w", err)
	}
	if cfg.Region == "" {
		return cfg, &Refused{Err: errors.New("aws: no region: set ecs.region / router.alb.region, or AWS_REGION on the worker")}
	}
	return cfg, nil
}

// Refused is an AWS answer that retrying cannot change: access denied, a
// resource that does not exist, a bad parameter.
type Refused struct{ Err error }

func (e *Refused) Error() string { return e.Err.Error() }
func (e *Refused) Unwrap() error { return e.Err }

// Permanent: no retry helps (rollout.IsPermanent).
func (e *Refused) Permanent() bool { return true }

// Explain words an AWS error for the operation it answered: access denied
// names the IAM action and the policy to grant; errors that retrying cannot
// fix are Refused. The SDK's messages carry no credentials.
func Explain(prefix, action string, err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return fmt.Errorf("%s: %s: %w", prefix, action, err)
	}
	switch api.ErrorCode() {
	case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnrecognizedClientException", "InvalidClientTokenId":
		return &Refused{fmt.Errorf("%s: %s was refused (%s: %s): the worker's AWS identity needs %s; grant it the policy in deployments/ecs/iam-policy.json",
			prefix, action, api.ErrorCode(), api.ErrorMessage(), action)}
	case "ClientException", "InvalidParameterException", "ValidationError", "ServiceNotFoundException", "ClusterNotFoundException",
		"ListenerNotFound", "RuleNotFound", "TargetGroupNotFound":
		return &Refused{fmt.Errorf("%s: %s: %s: %s", prefix, action, api.ErrorCode(), api.ErrorMessage())}
	}
	return fmt.Errorf("%s: %s: %s: %s", prefix, action, api.ErrorCode(), api.ErrorMessage())
}
