//! IPMI commands that ipmi-rs 0.6 lacks, on top of its `IpmiCommand` trait:
//! chassis status and control, boot options, FRU reads and Close Session.

use ipmi_rs::connection::{IpmiCommand, Message, NetFn, NotEnoughData};

use crate::bmc::types::{BootDevice, PowerCommand};

/// Get Chassis Status (IPMI 2.0 section 28.2; NetFn Chassis 0x00, cmd 0x01).
pub struct GetChassisStatus;

impl From<GetChassisStatus> for Message {
    fn from(_: GetChassisStatus) -> Self {
        Message::new_request(NetFn::Chassis, 0x01, Vec::new())
    }
}

impl IpmiCommand for GetChassisStatus {
    /// Whether the chassis has power: byte 1, bit 0 ("Power is on").
    type Output = bool;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<bool, NotEnoughData> {
        data.first().map(|b| b & 0x01 == 0x01).ok_or(NotEnoughData)
    }
}

/// Chassis Control (IPMI 2.0 section 28.3; NetFn Chassis 0x00, cmd 0x02).
pub struct ChassisControl(pub PowerCommand);

impl ChassisControl {
    /// The request's one data byte (table 28-4).
    pub fn code(command: PowerCommand) -> u8 {
        match command {
            PowerCommand::ForceOff => 0x00,
            PowerCommand::On => 0x01,
            PowerCommand::PowerCycle => 0x02,
            PowerCommand::ForceRestart => 0x03,
            // 0x04 is "pulse diagnostic interrupt" (NMI); 0x05 asks the OS to
            // shut down through ACPI.
            PowerCommand::GracefulShutdown => 0x05,
        }
    }
}

impl From<ChassisControl> for Message {
    fn from(c: ChassisControl) -> Self {
        Message::new_request(NetFn::Chassis, 0x02, vec![ChassisControl::code(c.0)])
    }
}

impl IpmiCommand for ChassisControl {
    type Output = ();
    type Error = NotEnoughData;

    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

/// Set System Boot Options, parameter 5 "boot flags" (IPMI 2.0 section
/// 28.12, table 28-14; NetFn Chassis 0x00, cmd 0x08), for the next boot only.
pub struct SetBootFlags(pub BootDevice);

impl SetBootFlags {
    /// Parameter selector byte, then the five boot flag bytes.
    pub fn request_data(device: BootDevice) -> Vec<u8> {
        // Data 1: bit 7 "boot flags valid", bit 6 clear = "next boot only",
        // bit 5 clear = legacy (PC compatible) boot.
        // Data 2, bits 5:2, boot device selector: 0001b force PXE,
        // 0010b force boot from default hard drive.
        let selector: u8 = match device {
            BootDevice::Pxe => 0x01,
            BootDevice::Disk => 0x02,
        };
        vec![0x05, 0x80, selector << 2, 0x00, 0x00, 0x00]
    }
}

impl From<SetBootFlags> for Message {
    fn from(c: SetBootFlags) -> Self {
        Message::new_request(NetFn::Chassis, 0x08, SetBootFlags::request_data(c.0))
    }
}

impl IpmiCommand for SetBootFlags {
    type Output = ();
    type Error = NotEnoughData;

    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

/// Get FRU Inventory Area Info (IPMI 2.0 section 34.1; NetFn Storage 0x0A,
/// cmd 0x10): the FRU's size in bytes.
pub struct GetFruAreaInfo(pub u8);

impl From<GetFruAreaInfo> for Message {
    fn from(c: GetFruAreaInfo) -> Self {
        Message::new_request(NetFn::Storage, 0x10, vec![c.0])
    }
}

impl IpmiCommand for GetFruAreaInfo {
    type Output = u16;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<u16, NotEnoughData> {
        match data {
            // Byte 3 bit 0 set means the device is word-addressed; sizes and
            // offsets then count 16-bit words.
            [lo, hi, access, ..] if access & 1 == 1 => {
                Ok(u16::from_le_bytes([*lo, *hi]).saturating_mul(2))
            }
            [lo, hi, ..] => Ok(u16::from_le_bytes([*lo, *hi])),
            _ => Err(NotEnoughData),
        }
    }
}

/// Read FRU Data (IPMI 2.0 section 34.2; NetFn Storage 0x0A, cmd 0x11).
pub struct ReadFruData {
    pub fru_id: u8,
    pub offset: u16,
    pub count: u8,
}

impl From<ReadFruData> for Message {
    fn from(c: ReadFruData) -> Self {
        let [lo, hi] = c.offset.to_le_bytes();
        Message::new_request(NetFn::Storage, 0x11, vec![c.fru_id, lo, hi, c.count])
    }
}

impl IpmiCommand for ReadFruData {
    type Output = Vec<u8>;
    type Error = NotEnoughData;

    fn parse_success_response(data: &[u8]) -> Result<Vec<u8>, NotEnoughData> {
        let (count, bytes) = data.split_first().ok_or(NotEnoughData)?;
        bytes
            .get(..usize::from(*count))
            .map(<[u8]>::to_vec)
            .ok_or(NotEnoughData)
    }
}

/// Set Session Privilege Level (IPMI 2.0 section 22.18; NetFn App 0x06,
/// cmd 0x3B). An RMCP+ session starts at User level whatever RAKP asked
/// for as its maximum; chassis control needs Operator, boot options Admin.
pub struct SetSessionPrivilege;

impl From<SetSessionPrivilege> for Message {
    fn from(_: SetSessionPrivilege) -> Self {
        // 0x04: Administrator (table 22-28).
        Message::new_request(NetFn::App, 0x3B, vec![0x04])
    }
}

impl IpmiCommand for SetSessionPrivilege {
    type Output = ();
    type Error = NotEnoughData;

    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

/// Close Session (IPMI 2.0 section 22.19; NetFn App 0x06, cmd 0x3C).
pub struct CloseSession(pub u32);

impl From<CloseSession> for Message {
    fn from(c: CloseSession) -> Self {
        Message::new_request(NetFn::App, 0x3C, c.0.to_le_bytes().to_vec())
    }
}

impl IpmiCommand for CloseSession {
    type Output = ();
    type Error = NotEnoughData;

    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_status_reads_bit_zero() {
        assert_eq!(
            GetChassisStatus::parse_success_response(&[0x01, 0, 0]),
            Ok(true)
        );
        assert_eq!(
            GetChassisStatus::parse_success_response(&[0x60, 0, 0]),
            Ok(false)
        );
        assert!(GetChassisStatus::parse_success_response(&[]).is_err());
    }

    #[test]
    fn boot_flags_pxe_next_boot_only() {
        // What `ipmitool chassis bootparam get 5` shows as "Force PXE",
        // "Options apply to only next boot".
        assert_eq!(
            SetBootFlags::request_data(BootDevice::Pxe),
            vec![0x05, 0x80, 0x04, 0, 0, 0]
        );
        assert_eq!(SetBootFlags::request_data(BootDevice::Disk)[2], 0x08);
    }

    #[test]
    fn fru_sizes_and_reads() {
        assert_eq!(
            GetFruAreaInfo::parse_success_response(&[0x00, 0x01, 0]),
            Ok(256)
        );
        assert_eq!(
            GetFruAreaInfo::parse_success_response(&[0x80, 0x00, 1]),
            Ok(256)
        );
        assert_eq!(
            ReadFruData::parse_success_response(&[2, 0xAA, 0xBB]),
            Ok(vec![0xAA, 0xBB])
        );
        assert!(ReadFruData::parse_success_response(&[3, 0xAA]).is_err());
    }
}
