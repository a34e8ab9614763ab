import AcceptanceCore
import Foundation
import RedfishCore

/// Shapes shared by the simulated trees.
enum Redfish {
    static func link(_ path: String) -> JSONValue { ["@odata.id": .string(path)] }

    static func collection(_ path: String, type: String, name: String, members: [String]) -> JSONValue {
        [
            "@odata.id": .string(path), "@odata.type": .string("#\(type).\(type)"), "Name": .string(name),
            "Members@odata.count": .number(Double(members.count)), "Members": .array(members.map(link)),
        ]
    }

    static func resource(
        _ path: String, type: String, id: String, name: String,
        _ properties: [String: JSONValue] = [:]
    ) -> JSONValue {
        var object: [String: JSONValue] = [
            "@odata.id": .string(path), "@odata.type": .string("#\(type)"),
            "Id": .string(id), "Name": .string(name),
        ]
        for (key, value) in properties { object[key] = value }
        return .object(object)
    }

    static func status(_ state: String = "Enabled", _ health: String? = "OK") -> JSONValue {
        var status: [String: JSONValue] = ["State": .string(state)]
        if let health { status["Health"] = .string(health) }
        return .object(status)
    }

    static func namespaces(of resources: [String: JSONValue]) -> [String] {
        Set(
            resources.values.compactMap { $0["@odata.type"]?.string }.compactMap { type -> String? in
                let trimmed = type.hasPrefix("#") ? String(type.dropFirst()) : type
                // `ComputerSystem.v1_27_0.ComputerSystem` → `ComputerSystem.v1_27_0`; collections have no version.
                let parts = trimmed.split(separator: ".")
                guard let first = parts.first else { return nil }
                return parts.count >= 3 ? parts.dropLast().joined(separator: ".") : String(first)
            }
        ).sorted()
    }

    static let uuidBase = "9a8c0000-0000-4000-8000-"

    static let inventory = "/redfish/v1/UpdateService/FirmwareInventory"

    /// The UpdateService and its FirmwareInventory, one SoftwareInventory per firmware (`id`, `name`, `version`).
    static func updateService(_ firmware: [(id: String, name: String, version: String)]) -> [String: JSONValue] {
        var r: [String: JSONValue] = [:]
        r["/redfish/v1/UpdateService"] = resource(
            "/redfish/v1/UpdateService", type: "UpdateService.v1_17_0.UpdateService",
            id: "UpdateService", name: "Update Service",
            [
                "ServiceEnabled": false, "Status": status(), "FirmwareInventory": link(inventory),
            ])
        r[inventory] = collection(
            inventory, type: "SoftwareInventoryCollection", name: "Firmware Inventory",
            members: firmware.map { "\(inventory)/\($0.id)" })
        for entry in firmware {
            let path = "\(inventory)/\(entry.id)"
            r[path] = resource(
                path, type: "SoftwareInventory.v1_13_0.SoftwareInventory", id: entry.id, name: entry.name,
                [
                    "Version": .string(entry.version), "Updateable": true, "Status": status(),
                ])
        }
        return r
    }
}

/// A tree rendered whole from a simulated device's state on every request.
protocol RenderedRedfishTree: RedfishTree {
    func resources() -> [String: JSONValue]
}

extension RenderedRedfishTree {
    public func resource(at path: String) -> JSONValue? { resources()[path] }
    public var schemaNamespaces: [String] { Redfish.namespaces(of: resources()) }
}

/// A GB200 compute tray's BMC, or an NVLink switch tray's: one system with power control, processors (compute trays),
/// a chassis with leak detectors, a manager with an event log, and firmware inventory.
public struct TrayBMCTree: RenderedRedfishTree {
    public let model: RedfishRackModel
    public let name: String

    public init(model: RedfishRackModel, name: String) {
        self.model = model
        self.name = name
    }

    static let system = "/redfish/v1/Systems/System_0"
    static let chassis = "/redfish/v1/Chassis/Chassis_0"
    static let manager = "/redfish/v1/Managers/BMC_0"
    static let detectors = "/redfish/v1/Chassis/Chassis_0/ThermalSubsystem/LeakDetection/LeakDetectors"

    /// Firmware inventory ids for the profile's version points.
    static let firmwareIDs = [
        "bmc_version": "BMC_Firmware", "bios_version": "UEFI", "gpu_version": "GPU_Firmware",
        "cpld_version": "CPLD_0", "nvswitch_version": "NVSwitch_Firmware",
    ]

    static let detectorIDs = ["ColdPlate", "Manifold"]

    static func leakDetection(_ leaks: [String: String]) -> JSONValue {
        let health =
            leaks.values.contains("Critical") ? "Critical" : leaks.values.contains("Warning") ? "Warning" : "OK"
        return Redfish.resource(
            "\(chassis)/ThermalSubsystem/LeakDetection", type: "LeakDetection.v1_2_0.LeakDetection",
            id: "LeakDetection", name: "Leak Detection",
            [
                "Status": Redfish.status("Enabled", health),
                "LeakDetectors": Redfish.link(detectors),
            ])
    }

    static func detector(_ id: String, state: String) -> JSONValue {
        let path = "\(detectors)/\(id)"
        return Redfish.resource(
            path, type: "LeakDetector.v1_6_0.LeakDetector", id: id,
            name: id == "ColdPlate" ? "Cold plate leak detector" : "Manifold leak detector",
            [
                "DetectorState": .string(state), "LeakDetectorType": "Moisture",
                "Status": Redfish.status("Enabled", state),
            ])
    }

    /// The tray's ComputerSystem (what power-on polls on every tray).
    static func systemResource(_ tray: RedfishRackModel.Tray, power: RedfishRackModel.PowerState) -> JSONValue {
        let isCompute = tray.kind == .compute
        var system: [String: JSONValue] = [
            "PowerState": .string(power.rawValue),
            "SystemType": "Physical",
            "Manufacturer": "NVIDIA",
            "Model": isCompute ? "GB200 NVL72 Compute Tray" : "NVLink Switch Tray",
            "SerialNumber": .string(tray.serial),
            "Status": Redfish.status(power == .on ? "Enabled" : "StandbyOffline", "OK"),
            "Actions": [
                "#ComputerSystem.Reset": [
                    "target": .string("\(Self.system)/Actions/ComputerSystem.Reset"),
                    "ResetType@Redfish.AllowableValues": .array(RedfishRackModel.resetTypes.map { .string($0) }),
                ]
            ],
            "Links": ["Chassis": [Redfish.link(Self.chassis)], "ManagedBy": [Redfish.link(Self.manager)]],
        ]
        if isCompute { system["Processors"] = Redfish.link("\(Self.system)/Processors") }
        return Redfish.resource(
            Self.system, type: "ComputerSystem.v1_27_0.ComputerSystem", id: "System_0",
            name: "System", system)
    }

    /// One resource. The leak detection roll-up and the detectors (what the safety supervisor polls on every tray)
    /// and the system (what power-on polls) are rendered on their own; anything else from the whole tree.
    public func resource(at path: String) -> JSONValue? {
        if path == "\(Self.chassis)/ThermalSubsystem/LeakDetection" {
            guard model.tray(named: name) != nil else { return nil }
            return Self.leakDetection(model.leakStates(of: name))
        }
        if path.hasPrefix(Self.detectors + "/") {
            let id = String(path.dropFirst(Self.detectors.count + 1))
            guard Self.detectorIDs.contains(id), model.tray(named: name) != nil else { return nil }
            return Self.detector(id, state: model.leakStates(of: name)[id] ?? "OK")
        }
        if path == Self.system {
            guard let tray = model.tray(named: name), let power = model.powerState(of: name) else { return nil }
            return Self.systemResource(tray, power: power)
        }
        return resources()[path]
    }

    public func resources() -> [String: JSONValue] {
        guard let tray = model.tray(named: name), let power = model.powerState(of: name) else { return [:] }
        let leaks = model.leakStates(of: name)
        let isCompute = tray.kind == .compute
        var r: [String: JSONValue] = [:]
        r["/redfish/v1"] = Redfish.resource(
            "/redfish/v1", type: "ServiceRoot.v1_20_0.ServiceRoot", id: "RootService",
            name: "Root Service",
            [
                "RedfishVersion": "1.17.0",
                "UUID": .string(Redfish.uuidBase + String(format: "%012d", tray.number + (isCompute ? 0 : 100))),
                "Systems": Redfish.link("/redfish/v1/Systems"), "Chassis": Redfish.link("/redfish/v1/Chassis"),
                "Managers": Redfish.link("/redfish/v1/Managers"),
                "UpdateService": Redfish.link("/redfish/v1/UpdateService"),
            ])
        r["/redfish/v1/Systems"] = Redfish.collection(
            "/redfish/v1/Systems", type: "ComputerSystemCollection",
            name: "Computer System Collection", members: [Self.system])
        let health =
            leaks.values.contains("Critical") ? "Critical" : leaks.values.contains("Warning") ? "Warning" : "OK"
        r[Self.system] = Self.systemResource(tray, power: power)
        if isCompute {
            let fitted = tray.processors.filter(\.present)
            r["\(Self.system)/Processors"] = Redfish.collection(
                "\(Self.system)/Processors", type: "ProcessorCollection",
                name: "Processor Collection",
                members: fitted.map { "\(Self.system)/Processors/\($0.id)" })
            for processor in fitted {
                let path = "\(Self.system)/Processors/\(processor.id)"
                r[path] = Redfish.resource(
                    path, type: "Processor.v1_22_0.Processor", id: processor.id, name: processor.id,
                    [
                        "ProcessorType": .string(processor.type), "Model": .string(processor.model),
                        "Manufacturer": "NVIDIA", "SerialNumber": .string(processor.serial),
                        "Status": Redfish.status("Enabled", "OK"),
                    ])
            }
        }
        r["/redfish/v1/Chassis"] = Redfish.collection(
            "/redfish/v1/Chassis", type: "ChassisCollection",
            name: "Chassis Collection", members: [Self.chassis])
        r[Self.chassis] = Redfish.resource(
            Self.chassis, type: "Chassis.v1_28_0.Chassis", id: "Chassis_0", name: "Tray Chassis",
            [
                "ChassisType": "Sled", "Manufacturer": "NVIDIA", "SerialNumber": .string(tray.serial),
                "Status": Redfish.status("Enabled", health),
                "ThermalSubsystem": Redfish.link("\(Self.chassis)/ThermalSubsystem"),
                "Links": ["ComputerSystems": [Redfish.link(Self.system)], "ManagedBy": [Redfish.link(Self.manager)]],
            ])
        r["\(Self.chassis)/ThermalSubsystem"] = Redfish.resource(
            "\(Self.chassis)/ThermalSubsystem",
            type: "ThermalSubsystem.v1_5_0.ThermalSubsystem",
            id: "ThermalSubsystem", name: "Thermal Subsystem",
            [
                "Status": Redfish.status("Enabled", health),
                "LeakDetection": Redfish.link("\(Self.chassis)/ThermalSubsystem/LeakDetection"),
            ])
        r["\(Self.chassis)/ThermalSubsystem/LeakDetection"] = Self.leakDetection(leaks)
        r[Self.detectors] = Redfish.collection(
            Self.detectors, type: "LeakDetectorCollection", name: "Leak Detectors",
            members: Self.detectorIDs.map { "\(Self.detectors)/\($0)" })
        for id in Self.detectorIDs {
            r["\(Self.detectors)/\(id)"] = Self.detector(id, state: leaks[id] ?? "OK")
        }
        r["/redfish/v1/Managers"] = Redfish.collection(
            "/redfish/v1/Managers", type: "ManagerCollection",
            name: "Manager Collection", members: [Self.manager])
        r[Self.manager] = Redfish.resource(
            Self.manager, type: "Manager.v1_24_0.Manager", id: "BMC_0", name: "BMC",
            [
                "ManagerType": "BMC", "FirmwareVersion": .string(tray.firmware["bmc_version"] ?? "unknown"),
                "Status": Redfish.status(), "PowerState": "On",
                "Links": [
                    "ManagerForServers": [Redfish.link(Self.system)], "ManagerForChassis": [Redfish.link(Self.chassis)],
                ],
            ])
        let firmware = tray.firmware.sorted { $0.key < $1.key }.map { point, version in
            (id: Self.firmwareIDs[point] ?? point, name: Self.firmwareIDs[point] ?? point, version: version)
        }
        r.merge(Redfish.updateService(firmware)) { $1 }
        return r
    }

    public func patch(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome {
        guard resource(at: path) != nil else { return .notFound }
        return .badRequest(
            messageID: "Base.1.16.0.PropertyNotWritable",
            message: "The properties \(body.object?.keys.sorted().joined(separator: ", ") ?? "") are read-only.")
    }

    public func post(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome {
        guard path == "\(Self.system)/Actions/ComputerSystem.Reset" else {
            return resource(at: path) == nil ? .notFound : .notAllowed
        }
        let type = body["ResetType"]?.string ?? "On"
        switch model.reset(name, type: type) {
        case .accepted: return .accepted
        case let .invalid(value):
            return .badRequest(
                messageID: "Base.1.16.0.ActionParameterValueNotInList",
                message: "The value '\(value)' for the parameter ResetType is not in the list of acceptable values.")
        }
    }
}

/// A power shelf's controller, shaped like the OCP power-shelf profile and DMTF's public-power-shelf mockup:
/// `PowerEquipment/PowerShelves/1` with metrics, and the shelf chassis's `PowerSubsystem` with six supplies and their
/// redundancy group, and an event log.
public struct PowerShelfTree: RenderedRedfishTree {
    public let model: RedfishRackModel
    public let number: Int

    public init(model: RedfishRackModel, number: Int) {
        self.model = model
        self.number = number
    }

    static let shelf = "/redfish/v1/PowerEquipment/PowerShelves/1"
    static let chassis = "/redfish/v1/Chassis/PowerShelf"
    static let subsystem = "/redfish/v1/Chassis/PowerShelf/PowerSubsystem"
    static let supplies = "/redfish/v1/Chassis/PowerShelf/PowerSubsystem/PowerSupplies"
    static let manager = "/redfish/v1/Managers/PMC"
    static let entries = "/redfish/v1/Managers/PMC/LogServices/EventLog/Entries"

    public func resources() -> [String: JSONValue] {
        guard let reading = model.shelf(number) else { return [:] }
        var r: [String: JSONValue] = [:]
        r["/redfish/v1"] = Redfish.resource(
            "/redfish/v1", type: "ServiceRoot.v1_20_0.ServiceRoot", id: "RootService",
            name: "Root Service",
            [
                "RedfishVersion": "1.17.0",
                "UUID": .string(Redfish.uuidBase + String(format: "%012d", 200 + number)),
                "PowerEquipment": Redfish.link("/redfish/v1/PowerEquipment"),
                "Chassis": Redfish.link("/redfish/v1/Chassis"),
                "Managers": Redfish.link("/redfish/v1/Managers"),
                "UpdateService": Redfish.link("/redfish/v1/UpdateService"),
            ])
        r["/redfish/v1/PowerEquipment"] = Redfish.resource(
            "/redfish/v1/PowerEquipment",
            type: "PowerEquipment.v1_2_3.PowerEquipment",
            id: "PowerEquipment", name: "Power Equipment",
            [
                "Status": Redfish.status(), "PowerShelves": Redfish.link("/redfish/v1/PowerEquipment/PowerShelves"),
            ])
        r["/redfish/v1/PowerEquipment/PowerShelves"] = Redfish.collection(
            "/redfish/v1/PowerEquipment/PowerShelves", type: "PowerDistributionCollection", name: "Power Shelves",
            members: [Self.shelf])
        let healthy = reading.supplies.count { $0.healthy }
        let shelfHealth = reading.alarm ? (healthy < 5 ? "Critical" : "Warning") : "OK"
        r[Self.shelf] = Redfish.resource(
            Self.shelf, type: "PowerDistribution.v1_6_0.PowerDistribution", id: "1",
            name: "Power Shelf \(number)",
            [
                "EquipmentType": "PowerShelf", "Model": "ORv3 HPR 33 kW", "Manufacturer": "Simulated",
                "SerialNumber": .string(String(format: "SIMSHELF%02d", number)),
                "FirmwareVersion": .string(reading.firmware["pmc_version"] ?? "unknown"),
                "Status": Redfish.status("Enabled", shelfHealth),
                "Metrics": Redfish.link("\(Self.shelf)/Metrics"),
                "Links": ["Chassis": [Redfish.link(Self.chassis)], "ManagedBy": [Redfish.link(Self.manager)]],
            ])
        r["\(Self.shelf)/Metrics"] = Redfish.resource(
            "\(Self.shelf)/Metrics",
            type: "PowerDistributionMetrics.v1_4_0.PowerDistributionMetrics",
            id: "Metrics", name: "Power Shelf Metrics",
            [
                "PowerWatts": [
                    "Reading": .number((reading.inputWatts).rounded()),
                    "DataSourceUri": .string("\(Self.shelf)/Metrics"),
                ]
            ])
        r["/redfish/v1/Chassis"] = Redfish.collection(
            "/redfish/v1/Chassis", type: "ChassisCollection",
            name: "Chassis Collection", members: [Self.chassis])
        r[Self.chassis] = Redfish.resource(
            Self.chassis, type: "Chassis.v1_28_0.Chassis", id: "PowerShelf",
            name: "Power Shelf \(number)",
            [
                "ChassisType": "Shelf", "Status": Redfish.status("Enabled", shelfHealth),
                "PowerSubsystem": Redfish.link(Self.subsystem),
                "Links": ["ManagedBy": [Redfish.link(Self.manager)]],
            ])
        r[Self.subsystem] = Redfish.resource(
            Self.subsystem, type: "PowerSubsystem.v1_1_3.PowerSubsystem", id: "PowerSubsystem",
            name: "Power Subsystem",
            [
                "CapacityWatts": .number(Double(healthy) * RedfishRackModel.supplyCapacityWatts),
                "Allocation": ["AllocatedWatts": .number(reading.outputWatts.rounded())],
                "PowerSupplyRedundancy": redundancy(reading),
                "PowerSupplies": Redfish.link(Self.supplies),
                "Status": Redfish.status("Enabled", shelfHealth),
            ])
        r[Self.supplies] = Redfish.collection(
            Self.supplies, type: "PowerSupplyCollection", name: "Power Supplies",
            members: (1...reading.supplies.count).map { "\(Self.supplies)/\($0)" })
        for (index, supply) in reading.supplies.enumerated() {
            let id = String(index + 1)
            let path = "\(Self.supplies)/\(id)"
            let state = !supply.present ? "Absent" : supply.healthy ? "Enabled" : "UnavailableOffline"
            r[path] = Redfish.resource(
                path, type: "PowerSupply.v1_6_0.PowerSupply", id: id, name: "Power Supply \(id)",
                [
                    "Status": Redfish.status(state, supply.present ? (supply.healthy ? "OK" : "Critical") : nil),
                    "LineInputStatus": .string(!supply.present ? "Unknown" : supply.healthy ? "Normal" : "LossOfInput"),
                    "PowerCapacityWatts": .number(RedfishRackModel.supplyCapacityWatts),
                    "Manufacturer": "Simulated", "Model": "ORv3 5.5 kW", "SerialNumber": .string(supply.serial),
                    "HotPluggable": true,
                    "OutputRails": [["NominalVoltage": 50, "PhysicalContext": "PowerSupply"]],
                    "Metrics": Redfish.link("\(path)/Metrics"),
                ])
            r["\(path)/Metrics"] = Redfish.resource(
                "\(path)/Metrics", type: "PowerSupplyMetrics.v1_2_0.PowerSupplyMetrics",
                id: "Metrics", name: "Power Supply \(id) Metrics",
                [
                    "OutputPowerWatts": [
                        "Reading": .number(supply.watts.rounded()), "DataSourceUri": .string("\(path)/Metrics"),
                    ],
                    "RailVoltage": [
                        [
                            "Reading": .number(supply.healthy ? (reading.outputVolts * 100).rounded() / 100 : 0),
                            "DataSourceUri": .string("\(path)/Metrics"),
                        ]
                    ],
                    "Status": Redfish.status(supply.present ? "Enabled" : "Absent", supply.present ? "OK" : nil),
                ])
        }
        r["/redfish/v1/Managers"] = Redfish.collection(
            "/redfish/v1/Managers", type: "ManagerCollection",
            name: "Manager Collection", members: [Self.manager])
        r[Self.manager] = Redfish.resource(
            Self.manager, type: "Manager.v1_24_0.Manager", id: "PMC", name: "Power Management Controller",
            [
                "ManagerType": "EnclosureManager",
                "FirmwareVersion": .string(reading.firmware["pmc_version"] ?? "unknown"),
                "Status": Redfish.status(), "LogServices": Redfish.link("\(Self.manager)/LogServices"),
            ])
        r["\(Self.manager)/LogServices"] = Redfish.collection(
            "\(Self.manager)/LogServices", type: "LogServiceCollection",
            name: "Log Services", members: ["\(Self.manager)/LogServices/EventLog"])
        r["\(Self.manager)/LogServices/EventLog"] = Redfish.resource(
            "\(Self.manager)/LogServices/EventLog",
            type: "LogService.v1_9_0.LogService", id: "EventLog",
            name: "Event Log",
            [
                "Entries": Redfish.link(Self.entries), "Status": Redfish.status(), "ServiceEnabled": true,
            ])
        r[Self.entries] = Redfish.collection(
            Self.entries, type: "LogEntryCollection", name: "Event Log Entries",
            members: reading.events.map { "\(Self.entries)/\($0.id)" })
        for event in reading.events {
            let path = "\(Self.entries)/\(event.id)"
            r[path] = Redfish.resource(
                path, type: "LogEntry.v1_21_0.LogEntry", id: String(event.id), name: "Event \(event.id)",
                [
                    "EntryType": "Event", "Severity": .string(event.severity), "Message": .string(event.message),
                    "MessageId": .string("PowerShelf.1.0.\(event.messageID)"),
                    "Created": .string(Timestamp.string(model.clock.date(at: .seconds(event.at)))),
                ])
        }
        r.merge(
            Redfish.updateService([
                (
                    id: "PMC_Firmware", name: "PMC firmware",
                    version: reading.firmware["pmc_version"] ?? "unknown"
                )
            ])
        ) { $1 }
        return r
    }

    func redundancy(_ reading: RedfishRackModel.ShelfReading) -> JSONValue {
        [
            [
                "RedundancyType": "NPlusM", "MaxSupportedInGroup": 6, "MinNeededInGroup": 5,
                "RedundancyGroup": .array((1...reading.supplies.count).map { Redfish.link("\(Self.supplies)/\($0)") }),
                "Status": Redfish.status("Enabled", reading.alarm ? "Warning" : "OK"),
            ]
        ]
    }

    public func patch(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome {
        guard resource(at: path) != nil else { return .notFound }
        return .badRequest(messageID: "Base.1.16.0.PropertyNotWritable", message: "The properties are read-only.")
    }

    public func post(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome {
        resource(at: path) == nil ? .notFound : .notAllowed
    }
}
