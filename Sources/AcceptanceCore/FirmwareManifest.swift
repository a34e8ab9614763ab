import Foundation
import Yams

/// The firmware a release ships: per device model, the version each firmware point must read.
///
/// `Fixtures/firmware/<release>.yaml`:
/// ```yaml
/// release: nvl72-2026.10
/// models:
///   gb200-compute-tray:
///     bmc_version: 25.09-4
/// ```
public struct FirmwareManifest: Sendable {
    public var release: String
    public var description: String
    /// Model → point → version.
    public var versions: [String: [String: String]]
    public var file: String

    public func version(model: String, point: String) -> String? { versions[model]?[point] }

    public static func load(path: String) throws(DiagnosticsError) -> FirmwareManifest {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var manifest = FirmwareManifest(release: "", description: "", versions: [:], file: path)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "firmware manifest") {
            reader.rejectUnknownKeys(entries, allowed: ["release", "description", "models"], in: "firmware manifest")
            for (key, _, value) in entries {
                switch key {
                case "release": manifest.release = reader.scalar(value, "release") ?? ""
                case "description": manifest.description = reader.scalar(value, "description") ?? ""
                case "models":
                    for (model, _, pointsNode) in reader.mapping(value, "models") ?? [] {
                        var versions: [String: String] = [:]
                        for (point, _, versionNode) in reader.mapping(pointsNode, "model '\(model)'") ?? [] {
                            if let version = reader.scalar(versionNode, "version of \(point)") {
                                versions[point] = version
                            }
                        }
                        manifest.versions[model] = versions
                    }
                default: break
                }
            }
            if manifest.release.isEmpty { reader.error("firmware manifest needs a 'release'", at: root) }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        return manifest
    }
}
