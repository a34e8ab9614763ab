import AcceptanceCore
import Foundation

/// What `acceptance points`, `read` and `write` do: the tools a technician reaches for when a test fails.
public enum PointTool {
    /// The rack configuration: the station's rack, or the given one.
    /// - Parameter models: models fitted in the simulated rack (`--model`); a station's own come from its file.
    public static func configuration(
        rack: String?, station: String?, models fitted: [String: String] = [:],
        workspace: Workspace
    ) throws(HarnessError) -> RackConfiguration {
        var rackID = rack ?? "gb200-nvl72"
        var counts: [String: Int] = [:]
        var models = fitted
        if let station {
            let loaded = try StationConfiguration.load(named: station, workspace: workspace)
            if rack == nil { rackID = loaded.rack ?? rackID }
            counts = loaded.groupCounts
            models = loaded.models
        }
        do {
            return try RackConfiguration.load(
                rackID: rackID, fixtures: workspace.fixtures, protocols: Transports.protocols,
                counts: counts, models: models)
        } catch {
            throw .invalidFiles(error)
        }
    }

    /// A table of every point (of one device, or all): name, register, type, unit, access, states, description.
    public static func listing(_ configuration: RackConfiguration, device: String?) throws(HarnessError) -> String {
        let instances = try instances(configuration, device: device)
        var rows = [["POINT", "REGISTER", "TYPE", "UNIT", "ACCESS", "DESCRIPTION"]]
        for instance in instances {
            for point in configuration.profiles[instance.model]?.points ?? [] {
                let type = point.address.layout.isEmpty ? point.kind.rawValue : point.address.layout
                var description = point.description
                if !point.states.isEmpty {
                    description +=
                        " ["
                        + point.states.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                        .joined(separator: " ") + "]"
                }
                rows.append([
                    "\(instance.name).\(point.name)", point.whereabouts, type,
                    point.unit?.symbol ?? "-", point.access.rawValue, description,
                ])
            }
        }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            ((0..<5).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) } + [row[5]])
                .joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    /// The device instances `points` lists: one, or all; an unknown name is an error naming those there are.
    public static func instances(
        _ configuration: RackConfiguration, device: String?
    ) throws(HarnessError) -> [RackProfile.DeviceInstance] {
        let instances = configuration.rack.devices.filter { device == nil || $0.name == device }
        guard !instances.isEmpty else {
            throw .unsupported(
                "rack '\(configuration.rack.id)' has no device '\(device ?? "")' "
                    + "(it has \(configuration.rack.devices.map(\.name).joined(separator: ", ")))")
        }
        return instances
    }

    /// The value to write, parsed for the point: `40 %`, `3 bar`, `manual`, `on`.
    public static func value(
        _ text: String, for reference: String, in configuration: RackConfiguration
    )
        throws(HarnessError) -> Value
    {
        guard let (_, point) = configuration.resolve(reference) else {
            var message = "unknown point '\(reference)'"
            if let suggestion = closest(to: reference, in: configuration.allPointNames) {
                message += "; did you mean '\(suggestion)'?"
            }
            throw .unsupported(message)
        }
        guard point.access == .readWrite else {
            throw .unsupported("'\(reference)' is read-only (\(point.whereabouts))")
        }
        let value: Value
        do {
            let expression = try Expression.parse(text)
            let (bound, _, errors) = expression.bind(expecting: point.valueType) { _ in nil }
            if let first = errors.first { throw ExpressionError(first.message, at: first.offset) }
            value = try bound.evaluate([:])
        } catch let error as ExpressionError {
            throw .unsupported("'\(text)' for \(reference): \(error.message); it needs \(point.valueType)")
        } catch {
            throw .unsupported("'\(text)' for \(reference): \(error)")
        }
        if let problem = point.address.problem(writing: value, to: point) {
            throw .unsupported("'\(text)' for \(reference): \(problem)")
        }
        return value
    }
}
