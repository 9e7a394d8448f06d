# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ambient_global_optspecs
    string join \n log-level= log-format= h/help V/version
end

function __fish_ambient_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ambient_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ambient_using_subcommand
    set -l cmd (__fish_ambient_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ambient -n "__fish_ambient_needs_command" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_needs_command" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_needs_command" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_needs_command" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "install" -d 'Install ambient into a Kubernetes cluster'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "uninstall" -d 'Remove what `ambient install` created'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "verify-install" -d 'Check that what `ambient install` applies is in the cluster and rolled out'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "manifest" -d 'Render install manifests'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "profile" -d 'List and show install profiles'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "analyze" -d 'Check mesh configuration for problems'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "proxy-status" -d 'Show whether each proxy has the control plane\'s latest config'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "ztunnel-config" -d 'Show a ztunnel\'s workloads, services, policies and certificates'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "waypoint" -d 'Manage waypoint proxies (Gateway resources of class istio-waypoint)'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "local" -d 'Run a real ambient mesh on this Linux machine, without Kubernetes'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "version" -d 'Print the version and git commit'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "controlplane" -d 'Run the control plane: xDS server and certificate authority'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "ztunnel" -d 'Run the per-node L4 proxy'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "cni" -d 'Run the CNI node agent (or, as `cni plugin`, the CNI plugin)'
complete -c ambient -n "__fish_ambient_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand install" -l profile -d 'Install profile' -r
complete -c ambient -n "__fish_ambient_using_subcommand install" -l set -d 'Override one value (repeatable), e.g. `--set trustDomain=example.org`' -r
complete -c ambient -n "__fish_ambient_using_subcommand install" -s f -l filename -d 'Values file(s) merged over the profile' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand install" -l context -d 'Kubernetes context (default: the kubeconfig\'s current context)' -r
complete -c ambient -n "__fish_ambient_using_subcommand install" -l kubeconfig -d 'Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand install" -l wait-timeout -d 'How long to wait for the Deployments and DaemonSets to roll out (s, m or h)' -r
complete -c ambient -n "__fish_ambient_using_subcommand install" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand install" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand install" -s y -l skip-confirmation -d 'Do not ask for confirmation'
complete -c ambient -n "__fish_ambient_using_subcommand install" -l dry-run -d 'Validate with the API server\'s dry-run; change nothing'
complete -c ambient -n "__fish_ambient_using_subcommand install" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand install" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -l context -d 'Kubernetes context (default: the kubeconfig\'s current context)' -r
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -l kubeconfig -d 'Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -l purge -d 'Also remove the CRDs (and with them every mesh policy in the cluster)'
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -s y -l skip-confirmation -d 'Do not ask for confirmation'
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -l dry-run -d 'Show what would be removed; change nothing'
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand uninstall" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -l profile -d 'Install profile' -r
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -l set -d 'Override one value (repeatable), e.g. `--set trustDomain=example.org`' -r
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -s f -l filename -d 'Values file(s) merged over the profile' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -l context -d 'Kubernetes context (default: the kubeconfig\'s current context)' -r
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -l kubeconfig -d 'Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand verify-install" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -f -a "generate" -d 'Print the manifests `install` would apply'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from generate" -l profile -d 'Install profile' -r
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from generate" -l set -d 'Override one value (repeatable), e.g. `--set trustDomain=example.org`' -r
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from generate" -s f -l filename -d 'Values file(s) merged over the profile' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from generate" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from generate" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from generate" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from generate" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from help" -f -a "generate" -d 'Print the manifests `install` would apply'
complete -c ambient -n "__fish_ambient_using_subcommand manifest; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and not __fish_seen_subcommand_from list dump help" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand profile; and not __fish_seen_subcommand_from list dump help" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand profile; and not __fish_seen_subcommand_from list dump help" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and not __fish_seen_subcommand_from list dump help" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and not __fish_seen_subcommand_from list dump help" -f -a "list" -d 'List the built-in profiles'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and not __fish_seen_subcommand_from list dump help" -f -a "dump" -d 'Print a profile\'s values'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and not __fish_seen_subcommand_from list dump help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from list" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from list" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from dump" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from dump" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from dump" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from dump" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the built-in profiles'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "dump" -d 'Print a profile\'s values'
complete -c ambient -n "__fish_ambient_using_subcommand profile; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -s f -l filename -d 'Files or folders of YAML to analyze (repeatable; `-` reads stdin). Without it, the current Kubernetes cluster is analyzed' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -l output-threshold -d 'Lowest severity to print' -r -f -a "info\t''
warning\t''
error\t''"
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -l failure-threshold -d 'Lowest severity that makes the exit status 1' -r -f -a "info\t''
warning\t''
error\t''"
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -l kubeconfig -d 'With no `-f`: kubeconfig file (default: `$KUBECONFIG`, `~/.kube/config`, or in-cluster)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -l context -d 'With no `-f`: kubeconfig context to use' -r
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -l timeout -d 'With no `-f`: how long to wait for the cluster\'s objects' -r
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand analyze" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand proxy-status" -l controlplane-address -d 'Control plane debug address (default: found in the cluster or the local mesh)' -r
complete -c ambient -n "__fish_ambient_using_subcommand proxy-status" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c ambient -n "__fish_ambient_using_subcommand proxy-status" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand proxy-status" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand proxy-status" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand proxy-status" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel-config" -l node -d 'The node whose ztunnel to ask (default: any)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel-config" -l admin-address -d 'ztunnel admin address to ask directly' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel-config" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel-config" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel-config" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel-config" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel-config" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -f -a "apply" -d 'Create or update a waypoint for a namespace'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -f -a "list" -d 'List waypoints'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -f -a "delete" -d 'Delete waypoints'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -f -a "run" -d 'Run the waypoint proxy (component entrypoint)'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and not __fish_seen_subcommand_from apply list delete run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -s n -l namespace -d 'Namespace of the waypoint' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -l name -d 'Name of the waypoint Gateway' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -l for -d 'Which traffic the waypoint handles' -r -f -a "service\t''
workload\t''
all\t''
none\t''"
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -l enroll-namespace -d 'Also label the namespace to use this waypoint'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -l wait -d 'Wait for the waypoint to be ready'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from apply" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from list" -s n -l namespace -d 'Namespace to list' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from list" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from list" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from list" -s A -l all-namespaces -d 'List waypoints in all namespaces'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from delete" -s n -l namespace -d 'Namespace of the waypoints' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from delete" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from delete" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from delete" -l all -d 'Delete every waypoint in the namespace'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from run" -l xds-address -d 'Control plane xDS address' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from run" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from run" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from run" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from help" -f -a "apply" -d 'Create or update a waypoint for a namespace'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from help" -f -a "list" -d 'List waypoints'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete waypoints'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from help" -f -a "run" -d 'Run the waypoint proxy (component entrypoint)'
complete -c ambient -n "__fish_ambient_using_subcommand waypoint; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "up" -d 'Start a local mesh from Kubernetes YAML'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "down" -d 'Stop the local mesh and remove everything it created'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "status" -d 'Show the local mesh\'s nodes, pods and components'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "exec" -d 'Run a command inside a pod\'s network namespace'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "logs" -d 'Show a pod\'s or component\'s logs'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "metrics" -d 'Print a component\'s Prometheus metrics'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "runtime" -d 'The runtime behind `up` (started by `up`, not by hand)'
complete -c ambient -n "__fish_ambient_using_subcommand local; and not __fish_seen_subcommand_from up down status exec logs metrics runtime help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from up" -s f -l filename -d 'Files or folders of Kubernetes YAML (repeatable)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from up" -l nodes -d 'Number of nodes to spread pods over' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from up" -l state-dir -d 'Where the local mesh keeps its state (one folder per mesh)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from up" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from up" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from down" -l state-dir -d 'Where the local mesh keeps its state (one folder per mesh)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from down" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from down" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from down" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from status" -s o -l output -d 'Output format (json and yaml add each component\'s observed health to the state file)' -r -f -a "table\t''
json\t''
yaml\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from status" -l state-dir -d 'Where the local mesh keeps its state (one folder per mesh)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from status" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from status" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from exec" -s n -l namespace -d 'Pod namespace' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from exec" -l state-dir -d 'Where the local mesh keeps its state (one folder per mesh)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from exec" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from exec" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from exec" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from exec" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -s n -l namespace -d 'Pod namespace' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -s c -l container -d 'Container, for pods with several' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -l node -d 'Node, for per-node components' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -l state-dir -d 'Where the local mesh keeps its state (one folder per mesh)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -s f -l follow -d 'Keep printing new lines'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from logs" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from metrics" -l state-dir -d 'Where the local mesh keeps its state (one folder per mesh)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from metrics" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from metrics" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from metrics" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from metrics" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from runtime" -s f -l filename -d 'Files or folders of Kubernetes YAML (repeatable)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from runtime" -l nodes -d 'Number of nodes to spread pods over' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from runtime" -l state-dir -d 'Where the local mesh keeps its state (one folder per mesh)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from runtime" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from runtime" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from runtime" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from runtime" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "up" -d 'Start a local mesh from Kubernetes YAML'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "down" -d 'Stop the local mesh and remove everything it created'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the local mesh\'s nodes, pods and components'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "exec" -d 'Run a command inside a pod\'s network namespace'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "logs" -d 'Show a pod\'s or component\'s logs'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "metrics" -d 'Print a component\'s Prometheus metrics'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "runtime" -d 'The runtime behind `up` (started by `up`, not by hand)'
complete -c ambient -n "__fish_ambient_using_subcommand local; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand completions" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand completions" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand completions" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand version" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand version" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand version" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand version" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand version" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l config-source -d 'Where mesh configuration comes from' -r -f -a "kube\t'Watch the Kubernetes API (in-cluster config or kubeconfig)'
files\t'Watch files and folders of Kubernetes YAML'"
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l config -d 'Files or folders of YAML, with `--config-source files` (repeatable; `-` for stdin)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l trust-domain -d 'Trust domain of workload identities' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l root-namespace -d 'Namespace whose policies apply mesh-wide' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l xds-address -d 'xDS and CA listen address (TLS)' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l debug-address -d 'Debug and metrics listen address' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l state-dir -d 'Where to keep state that must survive restarts: the generated CA root, in files mode' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l ca-cert -d 'The CA\'s signing certificate (PEM): a root, or an intermediate (plug-in CA)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l ca-key -d 'The private key of --ca-cert (PEM)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l ca-chain -d 'Certificates between --ca-cert and the root (PEM, in order), for an intermediate CA' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l ca-root -d 'The root certificate (PEM) when --ca-cert is an intermediate and --ca-chain lacks it' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l ca-secret -d 'Kube mode: the Secret (in the root namespace) that keeps the generated CA root' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l root-cert-configmap -d 'Kube mode: publish the root certificate (key `root-cert.pem`) into this ConfigMap of the root namespace, for ztunnels to mount; it must exist (install creates it)' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l cert-ttl -d 'Lifetime of workload certificates when the request names none (s, m, h or d)' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l max-cert-ttl -d 'Longest workload certificate lifetime granted (s, m, h or d)' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l tokens-file -d 'Files mode: the tokens that authenticate callers, one per line: `<token> <namespace>/<serviceaccount> [node=<node>] [pod=<pod>]`' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l trusted-node-accounts -d 'Service accounts (`namespace/name`, comma separated) trusted to request certificates for pods on their own node [default: istio-system/ztunnel and <root-namespace>/ztunnel]' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l server-name -d 'Extra DNS names or IPs for the xDS endpoint\'s certificate (repeatable)' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l cluster-id -d 'Cluster name in workload uids (`<cluster>//Pod/<ns>/<name>`)' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l domain-suffix -d 'DNS suffix of service hostnames' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l context -d 'Kubernetes context (kube mode)' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l kubeconfig -d 'Kubeconfig file (kube mode; default: in-cluster, then $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ambient -n "__fish_ambient_using_subcommand controlplane" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l xds-address -d 'Control plane xDS address' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l ca-address -d 'Certificate authority address (default: the xDS address)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l node-name -d 'This node\'s name (ztunnel serves, and gets certificates for, the pods of this node)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l token-file -d 'Service account token presented to the control plane (read again on every reconnect)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l root-cert -d 'Root certificate (PEM) of the control plane and of the mesh' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l server-name -d 'Name to verify in the control plane\'s certificate [default: the address\'s host]' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l zds-socket -d 'The CNI agent\'s ZDS socket to connect to' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l admin-address -d 'Admin API listen address (config dump; keep it on localhost)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l admin-port -d 'Admin API port (shorthand for --admin-address 127.0.0.1:PORT)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l metrics-address -d 'Prometheus metrics listen address' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l metrics-port -d 'Prometheus metrics port (shorthand for --metrics-address 0.0.0.0:PORT)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l readiness-address -d 'Readiness listen address' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l readiness-port -d 'Readiness port (shorthand for --readiness-address 0.0.0.0:PORT)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l worker-threads -d 'Data-path worker threads [default: number of CPUs]' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l trust-domain -d 'Trust domain of the mesh' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l cluster-id -d 'Cluster id (as the control plane names workloads)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l network -d 'Network of this node\'s pods' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l access-log -d 'Access log: one line per connection when it closes' -r -f -a "off\t''
text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l packet-mark -d 'Mark on connections ztunnel opens for pods, which their redirect rules let through' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l cert-ttl -d 'Lifetime asked for workload certificates (e.g. 24h, 90m)' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -l wait-for-root-cert -d 'Wait for --root-cert to appear (and be non-empty) instead of failing: on Kubernetes it is a ConfigMap the control plane fills after ztunnel may already have started'
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand ztunnel" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l node-name -d 'This node\'s name: only its pods are enrolled' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l config-source -d 'Where pod information comes from' -r -f -a "kube\t'Watch the Kubernetes API (in-cluster config or kubeconfig)'
files\t'Watch files and folders of Kubernetes YAML'"
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l config -d 'Files or folders of YAML, with `--config-source files`' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l zds-socket -d 'The ZDS socket to listen on for ztunnel' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l cni-bin-dir -d 'Host folder for CNI plugin binaries' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l cni-conf-dir -d 'Host folder for CNI network configuration' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l plugin-socket -d 'Where the agent listens for the CNI plugin' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l readiness-address -d 'Serve `GET /healthz/ready` here (200 once the agent runs), for the kubelet\'s probe' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l netns-prefix -d 'Look for running pods only in named network namespaces (`/var/run/netns`) whose name starts with PREFIX, instead of every namespace on the node' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l trust-domain -d 'Trust domain of workload identities' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l root-namespace -d 'Namespace whose policies apply mesh-wide' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l context -d 'Kubernetes context (kube mode)' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l kubeconfig -d 'Kubeconfig file (kube mode; default: in-cluster, then $KUBECONFIG, then ~/.kube/config)' -r -F
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l install-plugin -d 'Install the plugin binary and its conflist entry on start, remove them on exit [default: on with --config-source kube, off with files]'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l no-install-plugin -d 'Do not install the plugin (the host provides it)'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l probe-snat -d 'Rewrite the source of node-originated TCP to enrolled pods (kubelet probes) to 169.254.7.127, which the pods\' redirect rules let through [default: on with kube]'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -l no-probe-snat -d 'Do not install the node-side probe rule'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -f -a "plugin" -d 'Act as the chained CNI plugin (CNI_COMMAND and friends in the environment, config on stdin)'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and not __fish_seen_subcommand_from plugin help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and __fish_seen_subcommand_from plugin" -l log-level -d 'Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to `info` for components and `warn` for laptop commands' -r
complete -c ambient -n "__fish_ambient_using_subcommand cni; and __fish_seen_subcommand_from plugin" -l log-format -d 'Log line format (components write structured logs to stderr)' -r -f -a "text\t''
json\t''"
complete -c ambient -n "__fish_ambient_using_subcommand cni; and __fish_seen_subcommand_from plugin" -s h -l help -d 'Print help'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and __fish_seen_subcommand_from plugin" -s V -l version -d 'Print version'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and __fish_seen_subcommand_from help" -f -a "plugin" -d 'Act as the chained CNI plugin (CNI_COMMAND and friends in the environment, config on stdin)'
complete -c ambient -n "__fish_ambient_using_subcommand cni; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "install" -d 'Install ambient into a Kubernetes cluster'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "uninstall" -d 'Remove what `ambient install` created'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "verify-install" -d 'Check that what `ambient install` applies is in the cluster and rolled out'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "manifest" -d 'Render install manifests'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "profile" -d 'List and show install profiles'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "analyze" -d 'Check mesh configuration for problems'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "proxy-status" -d 'Show whether each proxy has the control plane\'s latest config'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "ztunnel-config" -d 'Show a ztunnel\'s workloads, services, policies and certificates'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "waypoint" -d 'Manage waypoint proxies (Gateway resources of class istio-waypoint)'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "local" -d 'Run a real ambient mesh on this Linux machine, without Kubernetes'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "completions" -d 'Print shell completions'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "version" -d 'Print the version and git commit'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "controlplane" -d 'Run the control plane: xDS server and certificate authority'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "ztunnel" -d 'Run the per-node L4 proxy'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "cni" -d 'Run the CNI node agent (or, as `cni plugin`, the CNI plugin)'
complete -c ambient -n "__fish_ambient_using_subcommand help; and not __fish_seen_subcommand_from install uninstall verify-install manifest profile analyze proxy-status ztunnel-config waypoint local completions version controlplane ztunnel cni help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from manifest" -f -a "generate" -d 'Print the manifests `install` would apply'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "list" -d 'List the built-in profiles'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from profile" -f -a "dump" -d 'Print a profile\'s values'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from waypoint" -f -a "apply" -d 'Create or update a waypoint for a namespace'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from waypoint" -f -a "list" -d 'List waypoints'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from waypoint" -f -a "delete" -d 'Delete waypoints'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from waypoint" -f -a "run" -d 'Run the waypoint proxy (component entrypoint)'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from local" -f -a "up" -d 'Start a local mesh from Kubernetes YAML'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from local" -f -a "down" -d 'Stop the local mesh and remove everything it created'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from local" -f -a "status" -d 'Show the local mesh\'s nodes, pods and components'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from local" -f -a "exec" -d 'Run a command inside a pod\'s network namespace'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from local" -f -a "logs" -d 'Show a pod\'s or component\'s logs'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from local" -f -a "metrics" -d 'Print a component\'s Prometheus metrics'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from local" -f -a "runtime" -d 'The runtime behind `up` (started by `up`, not by hand)'
complete -c ambient -n "__fish_ambient_using_subcommand help; and __fish_seen_subcommand_from cni" -f -a "plugin" -d 'Act as the chained CNI plugin (CNI_COMMAND and friends in the environment, config on stdin)'
