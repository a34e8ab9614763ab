import Foundation

/// Which station this machine is, when a command names none: `ACCEPTANCE_STATION` (a station file, or a name in
/// `Fixtures/stations`), else the first station file in the usual configuration places. A station PC is configured
/// once, so `acceptance run leak-test` there drives its rack, never the built-in simulator by accident.
public enum StationDiscovery {
    /// A configured station: the file (or name) and where the configuration came from, for the banner.
    public struct Configured: Sendable, Equatable {
        public var station: String
        public var source: String

        public init(station: String, source: String) {
            self.station = station
            self.source = source
        }
    }

    /// The places searched, in order: `./station.yaml`, `$XDG_CONFIG_HOME/acceptance/station.yaml` (default
    /// `~/.config`), `/etc/acceptance/station.yaml`.
    public static func places(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        currentDirectory: String = FileManager.default.currentDirectoryPath
    ) -> [String] {
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let config = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "\(home)/.config"
        return [
            "\(currentDirectory)/station.yaml", "\(config)/acceptance/station.yaml", "/etc/acceptance/station.yaml",
        ]
    }

    /// The station this machine is configured as, if any.
    public static func configured(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        currentDirectory: String = FileManager.default.currentDirectoryPath
    ) -> Configured? {
        if let named = environment["ACCEPTANCE_STATION"], !named.isEmpty {
            return Configured(station: named, source: "ACCEPTANCE_STATION")
        }
        for place in places(environment: environment, currentDirectory: currentDirectory)
        where FileManager.default.fileExists(atPath: place) {
            return Configured(station: place, source: place)
        }
        return nil
    }
}
