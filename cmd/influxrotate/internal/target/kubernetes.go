package target

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/influxrotate/influxrotate/rotation"
)

// Kubernetes publishes the token as one key of a Secret, keeping its other
// keys; the Secret is created when missing.
type Kubernetes struct {
	Client    kubernetes.Interface
	Namespace string
	Secret    string
	Key       string
	// Scrubber masks every token the process holds in the API server's
	// errors, which may echo the Secret; nil masks the published token only.
	Scrubber *rotation.Scrubber
}

// KubeClient builds a client from kubeconfig (and context) when given, else
// from the in-cluster service account.
func KubeClient(kubeconfig, context string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	}
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// Name implements Target.
func (k *Kubernetes) Name() string {
	return fmt.Sprintf("kubernetes secret %s/%s key %s", k.Namespace, k.Secret, k.Key)
}

// Publish implements Target. A conflicting concurrent update is retried
// with client-go's default backoff.
func (k *Kubernetes) Publish(ctx context.Context, token string) error {
	secrets := k.Client.CoreV1().Secrets(k.Namespace)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		s, err := secrets.Get(ctx, k.Secret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: k.Secret, Namespace: k.Namespace,
					Labels: map[string]string{"app.kubernetes.io/managed-by": "influxrotate"}},
				Type: corev1.SecretTypeOpaque,
				Data: map[string][]byte{k.Key: []byte(token)},
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("secrets"), k.Secret, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[k.Key] = []byte(token)
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", k.Name(), scrub(err, scrubberWith(k.Scrubber, token)))
	}
	return nil
}

// ReadBack implements Target.
func (k *Kubernetes) ReadBack(ctx context.Context) (string, error) {
	s, err := k.Client.CoreV1().Secrets(k.Namespace).Get(ctx, k.Secret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", k.Name(), scrub(err, k.Scrubber))
	}
	data, ok := s.Data[k.Key]
	if !ok {
		return "", ErrNoToken
	}
	tok, err := rotation.ParseToken(data)
	if errors.Is(err, rotation.ErrTokenEmpty) {
		return "", ErrNoToken
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", k.Name(), scrub(err, k.Scrubber))
	}
	return tok, nil
}

// scrub keeps an API server error that echoes the object from carrying a
// token into a log line. The error is kept, for errors.Is, when it quotes
// none.
func scrub(err error, s *rotation.Scrubber) error {
	msg := err.Error()
	if clean := s.Scrub(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}
