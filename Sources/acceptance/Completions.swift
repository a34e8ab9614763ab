import Foundation
import Harness
import Simulation

/// Shell completion of the names the tool knows: procedure and suite ids, scenarios, stations. The shell runs
/// `acceptance` to ask (swift-argument-parser's custom completions), with the words typed so far: a
/// `--procedures` or `--fixtures` among them is honoured, as the command itself would.
enum Completions {
    /// Procedure ids and suite ids (`leak-test`, `fat-suite`).
    @Sendable static func procedures(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        let workspace = self.workspace(words)
        let ids = workspace.procedureFiles().map(name) + workspace.suiteIDs
        return Array(Set(ids)).sorted().filter { $0.hasPrefix(prefix) }
    }

    /// Scenario names in `Fixtures/scenarios`.
    @Sendable static func scenarios(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        Scenario.available(in: workspace(words).scenarios).filter { $0.hasPrefix(prefix) }
    }

    /// Station names in `Fixtures/stations`, and station files (`.yaml`) by path from what is typed.
    @Sendable static func stations(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        let folder = "\(workspace(words).fixtures)/stations"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.map(name)
        var files: [String] = []
        if prefix.contains("/") || prefix.hasPrefix(".") {
            let directory = prefix.hasSuffix("/") ? prefix : (prefix as NSString).deletingLastPathComponent
            let listed =
                (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
            for entry in listed {
                let path = directory.isEmpty ? entry : (directory as NSString).appendingPathComponent(entry)
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
                if isFolder.boolValue {
                    files.append(path + "/")
                } else if entry.hasSuffix(".yaml") || entry.hasSuffix(".yml") {
                    files.append(path)
                }
            }
        }
        return (names.sorted() + files.sorted()).filter { $0.hasPrefix(prefix) }
    }

    static func name(_ path: String) -> String {
        ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    }

    /// The workspace the typed command would use.
    static func workspace(_ words: [String]) -> Workspace {
        func value(_ option: String) -> String? {
            guard let at = words.firstIndex(of: option), at + 1 < words.count else { return nil }
            return words[at + 1]
        }
        return Workspace.locate(procedures: value("--procedures"), fixtures: value("--fixtures"))
    }
}
