package cli

import (
	"os"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/server"
)

// The Kubernetes roles of message queue triggers: `isotope mqt serve`
// (the controller of connector Deployments) and `isotope mqt consume`
// (one connector, run in those Deployments' pods).
func init() {
	registerSub("mqt", newMQTServeCommand)
	registerSub("mqt", newMQTConsumeCommand)
}

func newMQTServeCommand(g *Globals) *cobra.Command {
	var o server.MQTriggerOptions
	cmd := &cobra.Command{
		Use:   "serve --kubeconfig FILE",
		Short: "Run the message queue trigger role on Kubernetes: a connector Deployment per trigger",
		Long: `Run the message queue trigger role against a kube-apiserver: for every
MessageQueueTrigger a Deployment mqt-<name> (owned by the trigger) whose
pods run "isotope mqt consume" for it and call the function through the
router at --router; minReplicaCount replicas (1 when it is 0 and KEDA does
not scale the connector). With mqtkind keda and KEDA's ScaledObject CRD
installed, a ScaledObject of the same name scales it. A trigger's secret
is mounted into its connector pods and, with KEDA, becomes the
TriggerAuthentication mqt-<name>-auth; the role gets that Secret (for
its keys and version) and nothing else of Secrets. Only the holder of
the Lease "isotope-mqtrigger" acts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log, o.RouterURL = cmd.ErrOrStderr(), g.Router
			return server.RunMQTrigger(cmd.Context(), o)
		},
	}
	addKubeFlags(cmd, &o.KubeOptions, true)
	cmd.Flags().StringVar(&o.ConnectorAccount, "connector-service-account", "", "service account of connector pods (may get MessageQueueTriggers in their namespace)")
	return cmd
}

func newMQTConsumeCommand(g *Globals) *cobra.Command {
	var o server.MQTConsumeOptions
	cmd := &cobra.Command{
		Use:   "consume NAME",
		Short: "Consume one message queue trigger's topic (the connector pods' command)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Log, o.RouterURL, o.Trigger, o.Namespace = cmd.ErrOrStderr(), g.Router, args[0], g.Namespace
			return server.RunMQTConsume(cmd.Context(), o)
		},
	}
	addKubeFlags(cmd, &o.KubeOptions, false)
	host, _ := os.Hostname()
	cmd.Flags().StringVar(&o.ConsumerName, "consumer-name", envOr("POD_NAME", host), "this replica's name in a consumer group (env POD_NAME)")
	cmd.Flags().StringVar(&o.SecretDir, "secret-dir", "", "directory of the trigger's Secret, one file per key (the connector Deployment mounts spec.secret there); its keys override metadata keys")
	return cmd
}
