import ArgumentParser
import Foundation
import ProxyConfig
import ProxySettings
import SharedSettings
import Testing

@testable import MLflowOTelProxy

/// The command line: each subcommand parses, flags win over variables, `serve --help` lists every variable the
/// proxy reads, and bad input is named. What the commands do at run time is tested end to end (Tests/e2e).
@Suite struct CommandTests {
    @Test func everySubcommandParsesAndServeIsTheDefault() throws {
        for arguments in [["serve"], ["check-config"], ["test-destination"], ["healthcheck"], ["backfill", "--dry-run"], []] {
            _ = try MLflowOTelProxyCommand.parseAsRoot(arguments)
        }
        #expect(MLflowOTelProxyCommand.configuration.defaultSubcommand == Serve.self)
        #expect(throws: (any Error).self) { _ = try MLflowOTelProxyCommand.parseAsRoot(["serve", "--no-such-flag"]) }
    }

    @Test func flagsWinOverTheEnvironment() throws {
        let serve = try #require(
            try MLflowOTelProxyCommand.parseAsRoot(["serve", "--listen", "127.0.0.1:7001", "--upstream", "http://mlflow:5000"]) as? Serve)
        let configuration = try serve.options.loadConfiguration(environment: [
            "MLFLOW_TRACKING_URI": "http://other:5000", "MLFLOW_OTEL_PROXY_LISTEN": "0.0.0.0:9",
        ])
        #expect(configuration.listen.port == 7001)
        #expect(configuration.upstream?.description.contains("mlflow:5000") == true)
    }

    @Test func aConfigurationFileThatCannotBeReadIsNamedByItsSetting() throws {
        do {
            _ = try ProxyOptions.configurationFile(flag: nil, environment: ["MLFLOW_OTEL_PROXY_CONFIG": "/nonexistent/proxy.yaml"])
            Issue.record("an unreadable configuration file was accepted")
        } catch {
            #expect(error.setting == "MLFLOW_OTEL_PROXY_CONFIG" && error.reason.contains("/nonexistent/proxy.yaml"))
        }
        #expect(try ProxyOptions.configurationFile(flag: nil, environment: ["MLFLOW_OTEL_PROXY_CONFIG": ""]).path == nil)
    }

    @Test func serveHelpListsEveryVariable() {
        let help = Serve.helpMessage(columns: 200)
        let missing = EnvironmentReference.allNames.filter { !help.contains($0) }
        #expect(!EnvironmentReference.allNames.isEmpty)
        #expect(missing.isEmpty, "not in serve --help: \(missing.sorted())")
    }
}
